"""`/executions` in one process (role `all`, the in-process queue) on a scripted backend: the
202 and polling, tenants, the queue's cap, blocked code, and webhooks to a real HTTP receiver
on 127.0.0.1 (signed, retried, dead-lettered). The same over Redis and real gVisor:
`tests/cluster`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from sandbox.base import ExecutionResult, ExecutionSpec, FileOut, OutputSink, RichResult, Status
from sandbox.fake import FakeBackend
from sandgate.dispatch.webhooks import SIGNATURE_HEADER, verify
from sandgate.settings import Settings
from tests.dispatch.receiver import receiving
from tests.helpers import wait_for
from tests.inproc import InProc, inproc
from tests.service._policies import policies_with

SECRET = "webhook-secret-for-tests"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


class GatedBackend(FakeBackend):
    """Runs finish only once the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    async def run(
        self, spec: ExecutionSpec, on_output: OutputSink | None = None
    ) -> ExecutionResult:
        self.runs.append(spec)
        while not self.gate.is_set():
            await asyncio.sleep(0.01)
        return ExecutionResult(status=Status.OK, exit_code=0, stdout="done\n")


def _settings(**more: Any) -> dict[str, Any]:
    return {
        "webhook_secret": SECRET,
        "webhook_attempts": 3,
        "webhook_backoff_s": 0.01,
        "webhook_allow_private": True,
    } | more


def _ended(service: InProc, execution_id: str) -> dict[str, Any] | None:
    state: dict[str, Any] = service.request("GET", f"/executions/{execution_id}").json()
    return state if state["status"] in ("done", "failed") else None


def _delivered(service: InProc, execution_id: str) -> dict[str, Any] | None:
    state = _ended(service, execution_id)
    return state if state and state["webhook"]["state"] != "pending" else None


def test_when_an_execution_is_submitted_then_202_and_polling_shows_its_answer(
    tmp_path: Path,
) -> None:
    backend = FakeBackend(lambda _s: ExecutionResult(status=Status.OK, exit_code=0, stdout="7\n"))
    with inproc(tmp_path / "state", backend, **_settings()) as service:
        submitted = service.request("POST", "/executions", json={"code": "print(7)"})
        assert submitted.status_code == 202, submitted.text
        execution_id = submitted.json()["execution_id"]
        assert submitted.headers["Location"] == f"/executions/{execution_id}"
        assert submitted.json()["status"] in ("queued", "running", "done")
        state = wait_for(lambda: _ended(service, execution_id), "the execution's end")
        assert state["status"] == "done" and state["response"]["stdout"] == "7\n"
        records = [r for r in service.records() if r.action == "execute"]
        assert [r.details["execution_id"] for r in records] == [execution_id]
        assert len(backend.runs) == 1


def test_when_another_tenant_asks_for_an_execution_then_it_is_not_found(tmp_path: Path) -> None:
    with inproc(tmp_path / "state", **_settings()) as service:
        mine = service.new_key("a", tenant="alpha")
        theirs = service.new_key("b", tenant="beta")
        submitted = service.request("POST", "/executions", key=mine, json={"code": "1"})
        execution_id = submitted.json()["execution_id"]
        wait_for(lambda: _ended(service, execution_id))
        assert service.request("GET", f"/executions/{execution_id}", key=mine).status_code == 200
        other = service.request("GET", f"/executions/{execution_id}", key=theirs)
        assert other.status_code == 404 and other.json()["error"]["type"] == "not_found"
        assert service.request("GET", "/executions/nope").status_code == 404


def test_when_the_code_is_blocked_then_it_is_done_at_once_and_nothing_runs(
    tmp_path: Path,
) -> None:
    backend = FakeBackend()
    with inproc(tmp_path / "state", backend, **_settings()) as service:
        submitted = service.request("POST", "/executions", json={"code": f"k = '{AWS_KEY}'"})
        assert submitted.status_code == 202
        state = submitted.json()
        assert state["status"] == "done" and state["response"]["status"] == "blocked"
        polled = service.request("GET", f"/executions/{state['execution_id']}").json()
        assert polled["response"]["status"] == "blocked"
        assert backend.runs == []
        (record,) = [r for r in service.records() if r.action == "execute"]
        assert record.status == "blocked" and AWS_KEY not in json.dumps(record.content)


def test_when_the_queue_is_full_then_429_with_retry_after_and_nothing_is_queued(
    tmp_path: Path,
) -> None:
    backend = GatedBackend()
    settings = _settings(max_concurrency=1, queue_max_depth=1)
    with inproc(tmp_path / "state", backend, **settings) as service:
        first = service.request("POST", "/executions", json={"code": "1"}).json()
        wait_for(lambda: backend.runs, "the first run to start")
        service.request("POST", "/executions", json={"code": "2"})  # waits: the cap's one
        refused = service.request("POST", "/executions", json={"code": "3"})
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["type"] == "busy"
        assert int(refused.headers["Retry-After"]) >= 1
        backend.gate.set()
        wait_for(lambda: _ended(service, first["execution_id"]))
        wait_for(lambda: len(backend.runs) == 2, "the queued one to run")
        assert [spec.code for spec in backend.runs] == ["1", "2"]


def test_when_a_webhook_is_given_then_the_receiver_gets_the_signed_answer(
    tmp_path: Path,
) -> None:
    with receiving(204) as receiver, inproc(tmp_path / "state", **_settings()) as service:
        body = {"code": "print(1)", "webhook_url": receiver.url}
        execution_id = service.request("POST", "/executions", json=body).json()["execution_id"]
        (delivery,) = wait_for(lambda: receiver.got, "the webhook")
        assert verify(SECRET.encode(), delivery.body, delivery.headers[SIGNATURE_HEADER])
        assert not verify(
            b"another-secret-entirely", delivery.body, delivery.headers[SIGNATURE_HEADER]
        )
        sent = json.loads(delivery.body)
        assert (sent["execution_id"], sent["status"]) == (execution_id, "done")
        assert sent["response"]["status"] == "ok"
        state = wait_for(
            lambda: (
                (s := _ended(service, execution_id)) and s["webhook"]["state"] != "pending" and s
            )
        )
        assert state["webhook"] == {"state": "delivered", "attempts": 1, "last_error": None}


def test_when_the_receiver_keeps_failing_then_it_is_retried_and_dead_lettered(
    tmp_path: Path,
) -> None:
    with receiving(500) as receiver, inproc(tmp_path / "state", **_settings()) as service:
        body = {"code": "print(1)", "webhook_url": receiver.url + "?token=s3cret"}
        execution_id = service.request("POST", "/executions", json=body).json()["execution_id"]
        dead = wait_for(
            lambda: service.request("GET", "/executions?status=dead").json(), "a dead letter"
        )
        assert [d["execution_id"] for d in dead] == [execution_id]
        assert dead[0]["webhook"]["state"] == "dead" and dead[0]["webhook"]["attempts"] == 3
        assert "500" in dead[0]["webhook"]["last_error"]
        assert len(receiver.got) == 3
        assert len({d.body for d in receiver.got}) == 1  # the same signed answer each time
        (record,) = wait_for(lambda: [r for r in service.records() if r.action == "webhook"])
        assert record.verdict == "dead" and record.details["attempts"] == 3
        assert "s3cret" not in record.details["url"]


def test_when_the_webhook_points_at_loopback_then_it_is_refused_without_a_try(
    tmp_path: Path,
) -> None:
    settings = _settings(webhook_allow_private=False)
    with receiving(204) as receiver, inproc(tmp_path / "state", **settings) as service:
        body = {"code": "print(1)", "webhook_url": receiver.url}
        service.request("POST", "/executions", json=body)
        dead = wait_for(lambda: service.request("GET", "/executions?status=dead").json())
        assert dead[0]["webhook"]["attempts"] == 0
        assert "loopback" in dead[0]["webhook"]["last_error"]
        assert receiver.got == []


def test_when_an_api_or_worker_role_has_no_redis_then_the_settings_are_refused() -> None:
    for role in ("api", "worker"):
        with pytest.raises(ValidationError, match="needs SANDGATE_REDIS_URL"):
            Settings(role=role)
    assert Settings(role="all").redis_url is None


def test_when_the_listing_asks_for_another_status_or_a_bad_url_then_422(tmp_path: Path) -> None:
    with inproc(tmp_path / "state", **_settings()) as service:
        assert service.request("GET", "/executions?status=done").status_code == 422
        bad = service.request(
            "POST", "/executions", json={"code": "1", "webhook_url": "ftp://example.org/x"}
        )
        assert bad.status_code == 422
        assert service.request("GET", "/executions?status=dead").json() == []
        assert service.request("GET", "/executions/" + "x" * 65).status_code == 422


def _rich(spec: ExecutionSpec) -> ExecutionResult:
    """A run with a rich result, a file out and CPU to charge (what `outputs` asked for)."""
    data = b"a,b\n1,2\n"
    return ExecutionResult(
        status=Status.OK,
        exit_code=0,
        stdout="ok\n",
        cpu_ms=1500,
        results=[RichResult(kind="execute_result", data={"text/plain": "42"})],
        files={
            "out.csv": FileOut(
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                content_base64=base64.b64encode(data).decode(),
            )
        },
    )


def test_when_queued_then_the_answer_is_the_one_execute_gives_and_the_run_is_charged(
    tmp_path: Path,
) -> None:
    policies = policies_with(tmp_path / "policies", default={"quotas": {"executions_per_day": 2}})
    backend = FakeBackend(_rich)
    binary = base64.b64encode(b"\x00\xff\x10").decode()
    body = {"code": "1", "outputs": ["*.csv"], "files": {"in.bin": {"content_base64": binary}}}
    with inproc(tmp_path / "state", backend, policy_dir=policies, **_settings()) as service:
        key = service.new_key("agent")
        direct = service.request("POST", "/execute", key=key, json=body).json()
        submitted = service.request("POST", "/executions", key=key, json=body).json()
        state = wait_for(lambda: _ended(service, submitted["execution_id"]))
        queued = state["response"]
        volatile = ("execution_id", "request_id", "screening")  # ids, screening's latency
        assert {k: v for k, v in queued.items() if k not in volatile} == {
            k: v for k, v in direct.items() if k not in volatile
        }
        verdicts = {stage: s["verdict"] for stage, s in queued["screening"].items()}
        assert verdicts == {"code": "allow", "output": "allow"}
        assert queued["results"][0]["data"] == {"text/plain": "42"}
        assert list(queued["files"]) == ["out.csv"]
        assert [run.files["in.bin"] for run in backend.runs] == [b"\x00\xff\x10"] * 2
        refused = service.request("POST", "/executions", key=key, json=body)
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "quota_exceeded"
        usage = service.request("GET", "/usage", key=key).json()
        cpu = next(q for q in usage["key"] if q["quota"] == "cpu_seconds_per_day")
        assert cpu["used"] == 3.0  # both runs charged, the queued one by its worker
        records = [r for r in service.records() if r.action == "execute"]
        assert [r.details["files"] for r in records] == [["in.bin"], ["in.bin"]]


def test_when_a_key_passes_its_execute_rate_limit_then_executions_are_refused_too(
    tmp_path: Path,
) -> None:
    policies = policies_with(
        tmp_path / "policies", default={"rate_limits": {"execute": {"rate": 0.01, "burst": 1}}}
    )
    with inproc(tmp_path / "state", policy_dir=policies, **_settings()) as service:
        key = service.new_key("agent")
        assert service.request("POST", "/executions", key=key, json={"code": "1"}).is_success
        refused = service.request("POST", "/executions", key=key, json={"code": "1"})
        assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limited"
