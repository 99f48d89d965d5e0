"""Policies applied by the running service: binding, stricter requests, hot reload under load."""

from __future__ import annotations

import shutil
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandgate.policy.loader import load_policy_set
from sandgate.settings import REPO_ROOT
from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import LiveServer, start_server, wait_for

pytestmark = pytest.mark.sandbox

ALLOC_100MB = "b = bytearray(100 << 20); print(len(b))"


@pytest.fixture()
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", directory)
    (directory / "small.yaml").write_text("extends: default\nlimits: {memory_mb: 64}\n")
    return directory


@pytest.fixture()
def live(tmp_path: Path, policy_dir: Path, images: Any) -> Iterator[LiveServer]:
    state = make_state_dir(tmp_path / "state")
    env = {
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_POLICY_DIR": str(policy_dir),
        "SANDGATE_MAX_CONCURRENCY": "4",
        "SANDGATE_QUEUE_TIMEOUT_S": "60",
    }
    with start_server(state, env) as server:
        yield server


def execute(live: LiveServer, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    with live.client(key=key) as client:
        return client.post("/execute", json=body)


def test_when_policy_limits_differ_then_the_sandbox_enforces_them(live: LiveServer) -> None:
    small = execute(live, {"code": ALLOC_100MB, "policy": "small"}).json()
    assert (small["status"], small["policy"]["name"]) == ("memory_limit", "small")
    normal = execute(live, {"code": ALLOC_100MB}).json()
    assert (normal["status"], normal["policy"]["name"]) == ("ok", "default")
    assert small["policy"]["hash"] != normal["policy"]["hash"]


def test_when_request_names_a_looser_or_unknown_policy_then_403(live: LiveServer) -> None:
    looser = execute(live, {"code": "print(1)", "policy": "data-analysis"})
    assert looser.status_code == 403
    assert looser.json()["error"]["type"] == "policy_refused"
    assert "limits.memory_mb" in looser.json()["error"]["message"]
    unknown = execute(live, {"code": "print(1)", "policy": "ghost"})
    assert unknown.status_code == 403
    assert "no policy named 'ghost'" in unknown.json()["error"]["message"]


def test_when_key_has_a_tenant_then_its_bound_policy_applies(live: LiveServer) -> None:

    key = live.new_key("fin-agent", tenant="finance")
    body = execute(live, {"code": ALLOC_100MB}, key=key).json()
    assert "policy" in body, body
    assert body["policy"]["name"] == "data-analysis"
    # The finance key may ask for the stricter default, but not the other way round.
    assert (
        execute(live, {"code": "print(1)", "policy": "default"}, key=key).json()["policy"]["name"]
        == "default"
    )


def test_when_request_timeout_exceeds_the_policy_then_422(live: LiveServer) -> None:
    response = execute(live, {"code": "print(1)", "timeout_s": 11})
    assert response.status_code == 422
    assert "exceeds the limit of 10 s of policy 'default'" in response.json()["error"]["message"]


def test_when_code_is_larger_than_the_policy_allows_then_413(live: LiveServer) -> None:
    response = execute(live, {"code": "#" * 300_000})
    assert response.status_code == 413


def test_when_policy_file_is_edited_then_next_execution_uses_it(
    live: LiveServer, policy_dir: Path
) -> None:
    assert execute(live, {"code": ALLOC_100MB}).json()["status"] == "ok"
    default = policy_dir / "default.yaml"
    default.write_text(default.read_text().replace("memory_mb: 256", "memory_mb: 64"))
    wait_for(lambda: execute(live, {"code": ALLOC_100MB}).json()["status"] == "memory_limit")


def test_when_policy_file_is_broken_then_last_good_stays_and_error_is_shown(
    live: LiveServer, policy_dir: Path
) -> None:
    before = execute(live, {"code": "print(1)"}).json()["policy"]["hash"]
    default = policy_dir / "default.yaml"
    default.write_text(default.read_text().replace("memory_mb: 256", "memory_mb: -1"))

    def rejected() -> bool:
        with live.client() as client:
            return client.get("/policies").json()["rejected_reload"] is not None

    wait_for(rejected)
    with live.client() as client:
        listing = client.get("/policies").json()
        ready = client.get("/ready").json()
    issue = listing["rejected_reload"]["issues"][0]
    assert (issue["path"], issue["message"]) == ("limits.memory_mb", "must be > 0")
    assert issue["file"].endswith("default.yaml") and issue["line"] > 1
    assert ready["status"] == "ready" and "policy reload rejected" in ready["warnings"][0]
    after = execute(live, {"code": ALLOC_100MB}).json()
    assert after["policy"]["hash"] == before and after["status"] == "ok"
    assert "policy.reload_rejected" in live.log()


def test_when_a_bound_policy_file_is_deleted_then_the_change_is_rejected(
    live: LiveServer, policy_dir: Path
) -> None:
    (policy_dir / "data-analysis.yaml").unlink()  # bound to tenant finance in bindings.yaml

    def rejected() -> bool:
        with live.client() as client:
            return client.get("/policies").json()["rejected_reload"] is not None

    wait_for(rejected)
    with live.client() as client:
        names = [p["name"] for p in client.get("/policies").json()["policies"]]
    assert "data-analysis" in names


def test_when_policies_change_under_load_then_every_answer_names_a_valid_version(
    live: LiveServer, policy_dir: Path
) -> None:
    default = policy_dir / "default.yaml"
    original = default.read_text()
    versions = [original.replace("timeout_s: 10 ", f"timeout_s: {t} ") for t in (10, 9, 8, 7)]
    valid_hashes = set()
    for text in versions:
        default.write_text(text)
        valid_hashes.add(load_policy_set(policy_dir).policies["default"].hash)
    default.write_text(original)
    broken = original.replace("memory_mb: 256", "memory_mb: 0")

    seen: list[tuple[int, str | None]] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            response = execute(live, {"code": "print(1)"})
            body = response.json()
            seen.append((response.status_code, (body.get("policy") or {}).get("hash")))

    workers = [threading.Thread(target=hammer) for _ in range(4)]
    for w in workers:
        w.start()
    try:
        for text in [*versions[1:], broken, versions[0], broken, versions[3]]:
            default.write_text(text)
            time.sleep(1.5)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert len(seen) >= 8
    assert {code for code, _ in seen} == {200}
    assert {h for _, h in seen} <= valid_hashes
    assert len({h for _, h in seen}) >= 2, "the changes never took effect"


def test_when_validate_gets_a_candidate_then_issues_are_located(live: LiveServer) -> None:
    candidate = textwrap.dedent("""
        extends: default
        network:
          egres: ["pypi.org:443"]
    """).lstrip()
    with live.client() as client:
        bad = client.post("/policies/validate", content=candidate).json()
        good = client.post("/policies/validate", content="extends: strict\n").json()
        one = client.get("/policies/strict").json()
    assert bad["valid"] is False
    assert bad["messages"] == [
        "<candidate>:3:3: network.egres: unknown key (did you mean 'egress'?)"
    ]
    assert good["valid"] is True and good["hash"] == one["hash"]
    assert one["policy"]["limits"]["memory_mb"] == 128
