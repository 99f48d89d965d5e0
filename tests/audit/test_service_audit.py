"""The running service's audit trail: what it records, who may read it, and that it fails closed.

Real service, real HTTP, real gVisor, real SQLite and PostgreSQL stores.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandgate.audit import open_store
from sandgate.cluster.pgserver import PgServer
from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import LiveServer, start_server

pytestmark = pytest.mark.sandbox

CARD = "4111 1111 1111 1111"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def cli(
    state: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandgate", *args],
        env={"SANDGATE_STATE_DIR": str(state), "PATH": "/usr/bin:/bin", **(env or {})},
        capture_output=True,
        text=True,
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, images: Any) -> Iterator[LiveServer]:
    state = make_state_dir(tmp_path_factory.mktemp("audit-state"))
    env = {
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_MAX_CONCURRENCY": "1",
        "SANDGATE_QUEUE_TIMEOUT_S": "0.2",
    }
    with start_server(state, env) as server:
        yield server


def records(live: LiveServer, **query: Any) -> list[dict[str, Any]]:
    with live.client() as client:
        response = client.get("/audit/records", params={"limit": 1000, **query})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["records"]
    return found


def by_request(live: LiveServer, request_id: str) -> dict[str, Any]:
    (record,) = [r for r in records(live) if r["request_id"] == request_id]
    return record


def test_when_code_runs_then_one_record_with_who_what_and_policy(live: LiveServer) -> None:
    with live.client() as client:
        response = client.post("/execute", json={"code": "print('hi')"})
    body = response.json()
    record = by_request(live, body["request_id"])
    assert (record["action"], record["status"], record["verdict"]) == ("execute", "ok", "allow")
    assert (record["key_name"], record["tenant"]) == ("env", "default")
    assert record["policy_hash"] == body["policy"]["hash"]
    assert record["client"] == "127.0.0.1"
    assert record["details"]["execution_id"] == body["execution_id"]
    assert record["details"]["limits"]["memory_mb"] == 256
    assert record["content"]["stdout"] == "hi\n"


def test_when_code_is_blocked_then_the_record_keeps_only_redacted_code(live: LiveServer) -> None:
    with live.client() as client:
        body = client.post("/execute", json={"code": f"k = '{AWS_KEY}'"}).json()
    record = by_request(live, body["request_id"])
    assert (record["status"], record["verdict"]) == ("blocked", "block")
    assert AWS_KEY not in json.dumps(record)
    assert "<AWS_ACCESS_KEY>" in record["content"]["code"]


def test_when_text_is_screened_then_recorded_redacted(live: LiveServer) -> None:
    with live.client() as client:
        body = client.post("/screen", json={"text": f"card {CARD}", "stage": "input"}).json()
    record = by_request(live, body["request_id"])
    assert (record["action"], record["verdict"]) == ("screen", "redact")
    assert record["content"]["text"] == "card <CREDIT_CARD>"
    assert record["details"]["findings"][0]["type"] == "CREDIT_CARD"


@pytest.mark.parametrize(
    ("headers", "path", "body", "action", "status"),
    [
        ({"Authorization": "Bearer sg_nope"}, "/execute", {"code": "1"}, "auth.denied", "401"),
        ({}, "/screen", {"text": "x", "stage": "input"}, "auth.denied", "401"),
        (None, "/execute", {"code": "1", "policy": "ghost"}, "policy.refused", "403"),
        (None, "/policies", None, "forbidden", "403"),
    ],
)
def test_when_a_request_is_refused_then_the_refusal_is_recorded(
    live: LiveServer,
    headers: dict[str, str] | None,
    path: str,
    body: Any,
    action: str,
    status: str,
) -> None:
    if headers is None:  # a valid key without the needed right
        headers = {"Authorization": f"Bearer {live.new_key('weak')}"}
    if body is None:
        response = httpx.get(f"{live.url}{path}", headers=headers)
    else:
        response = httpx.post(f"{live.url}{path}", json=body, headers=headers)
    assert str(response.status_code) == status
    record = by_request(live, response.headers["x-request-id"])
    assert (record["action"], record["status"], record["verdict"]) == (action, status, "deny")
    assert record["details"]["path"] == path


def test_when_no_sandbox_is_free_then_the_429_is_recorded(live: LiveServer) -> None:
    slow = threading.Thread(
        target=lambda: httpx.post(
            f"{live.url}/execute",
            json={"code": "import time; time.sleep(3)"},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        )
    )
    slow.start()
    time.sleep(1.0)
    with live.client() as client:
        response = client.post("/execute", json={"code": "print(1)"})
    slow.join()
    assert response.status_code == 429
    assert by_request(live, response.headers["x-request-id"])["action"] == "rate_limited"


def test_when_keys_and_policies_change_then_recorded(live: LiveServer) -> None:
    live.new_key("fresh-agent", "default")
    actions = [(r["action"], r["key_name"]) for r in records(live)]
    assert ("key.create", "fresh-agent") in actions
    assert any(action == "policy.load" for action, _ in actions)


def test_when_tenants_read_the_log_then_each_sees_only_its_own(live: LiveServer) -> None:
    blue = live.new_key("blue-agent", "blue", ("execute", "audit:read"))
    green = live.new_key("green-agent", "green", ("execute", "audit:read"))
    for key in (blue, green):
        with live.client(key=key) as client:
            client.post("/execute", json={"code": "print(1)"})
    with live.client(key=blue) as client:
        lines = client.get("/audit/export", params={"format": "jsonl"}).text.splitlines()
        refused = client.get("/audit/export", params={"tenant": "green"})
        csv_text = client.get("/audit/export", params={"format": "csv"}).text
    tenants = {json.loads(line).get("tenant") for line in lines if '"seq"' in line}
    assert tenants == {"blue"}
    assert refused.status_code == 403
    assert "green" not in csv_text and "blue-agent" in csv_text
    with live.client() as admin:
        everyone = admin.get("/audit/export").text
    assert "green-agent" in everyone and "blue-agent" in everyone


def test_when_a_key_lacks_audit_read_then_the_log_is_closed_to_it(live: LiveServer) -> None:
    key = live.new_key("runner", "default", ("execute",))
    with live.client(key=key) as client:
        assert client.get("/audit/records").status_code == 403
        assert client.get("/audit/export").status_code == 403


def test_when_records_are_paged_then_newest_first_without_gaps(live: LiveServer) -> None:
    with live.client() as client:
        first = client.get("/audit/records", params={"limit": 3}).json()
        second = client.get(
            "/audit/records", params={"limit": 3, "before_seq": first["next_before_seq"]}
        ).json()
    seqs = [r["seq"] for r in first["records"] + second["records"]]
    assert seqs == sorted(seqs, reverse=True)
    assert seqs == list(range(seqs[0], seqs[0] - 6, -1))


def test_when_verified_then_all_hold_and_a_tampered_row_is_named(
    live: LiveServer, tmp_path: Path
) -> None:
    with live.client() as client:
        report = client.get("/audit/verify").json()
    assert report["ok"] is True and report["summary"].startswith("all ")
    assert cli(live.state_dir, "audit", "verify").returncode == 0
    copy = tmp_path / "audit.db"
    with sqlite3.connect(live.state_dir / "audit.db") as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as db:
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            db.execute(f"DROP TRIGGER {name}")
        db.execute("UPDATE audit_records SET verdict = 'allow' WHERE seq = 3")
    done = cli(live.state_dir, "audit", "verify", "--db", f"sqlite://{copy}")
    assert done.returncode == 1
    assert "seq 3" in done.stdout + done.stderr


def test_when_secrets_and_keys_were_sent_then_no_record_holds_them(live: LiveServer) -> None:
    with live.client() as client:
        client.post("/screen", json={"text": f"{CARD} {AWS_KEY} {ADMIN_KEY}", "stage": "output"})
        client.post("/execute", json={"code": f"print('{ADMIN_KEY}')"})
        client.post("/execute", json={"code": "print('4111 1111 ' + '1111 1111')"})
    raw = b"".join(p.read_bytes() for p in live.state_dir.glob("audit.db*"))
    for secret in (CARD, AWS_KEY, ADMIN_KEY, CARD.replace(" ", "")):
        assert secret.encode() not in raw, secret
    assert ADMIN_KEY not in live.log()


# -- fail closed, and nothing lost on kill -9 ---------------------------------------------


@pytest.mark.postgres
def test_when_postgres_goes_down_then_503_and_nothing_runs(
    own_pg: PgServer, tmp_path: Path, images: Any
) -> None:
    state = make_state_dir(tmp_path / "state")
    env = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_AUDIT_DSN": own_pg.dsn}
    with start_server(state, env) as server, server.client() as client:
        assert client.post("/execute", json={"code": "print(1)"}).json()["status"] == "ok"
        own_pg.stop()
        try:
            refused = client.post("/execute", json={"code": "open('/tmp/ran','w')"})
            screened = client.post("/screen", json={"text": "hi", "stage": "input"})
            ready = httpx.get(f"{server.url}/ready")
        finally:
            own_pg.start()
        assert (refused.status_code, screened.status_code, ready.status_code) == (503, 503, 503)
        assert refused.json()["error"]["type"] == "unavailable"
        assert "execute.start" not in [
            json.loads(line).get("event")
            for line in server.log().splitlines()
            if refused.headers["x-request-id"] in line
        ]
        assert client.post("/execute", json={"code": "print(1)"}).status_code == 200
    with open_store(own_pg.dsn) as store:
        assert store.verify().ok


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_when_the_service_is_killed_under_load_then_every_answer_is_on_record(
    backend: str, own_pg: PgServer, tmp_path: Path, images: Any
) -> None:
    state = make_state_dir(tmp_path / "state")
    dsn = own_pg.dsn if backend == "postgres" else f"sqlite://{state / 'audit.db'}"
    env = {
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_AUDIT_DSN": dsn,
        "SANDGATE_MAX_CONCURRENCY": "2",
        "SANDGATE_QUEUE_TIMEOUT_S": "30",
    }
    answered: list[str] = []
    stop = threading.Event()
    with start_server(state, env) as server:
        with open_store(dsn) as store:
            before = store.head().seq

        def hammer(i: int) -> None:
            with httpx.Client(
                base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as client:
                n = 0
                while not stop.is_set():
                    n += 1
                    path, body = (
                        ("/screen", {"text": f"hello {n}", "stage": "input"})
                        if n % 2
                        else ("/execute", {"code": f"print({n})"})
                    )
                    try:
                        response = client.post(path, json=body)
                    except httpx.HTTPError:
                        return
                    if response.status_code == 200:
                        answered.append(response.json()["request_id"])

        workers = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
        for w in workers:
            w.start()
        time.sleep(6)
        os.kill(server.process.pid, signal.SIGKILL)
        stop.set()
        for w in workers:
            w.join()
    with start_server(state, env):  # a restart reaps the sandboxes the crash left
        pass
    assert len(answered) >= 5
    with open_store(dsn) as store:
        assert store.verify().ok
        recorded = {r.request_id for r in store.iter_records() if r.seq > before}
    assert set(answered) <= recorded
