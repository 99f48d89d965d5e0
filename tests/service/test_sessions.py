"""The sessions API above the sandbox, in process on the scripted backend: lifecycle, tenancy,
limits of the policy, one execution at a time, files and their screening, and the audit record
of each. What a real session keeps between calls, and what isolates it, is tested on real
gVisor in `tests/api/test_sessions.py`."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.base import ExecutionResult, Status
from sandbox.fake import FakeBackend
from sandgate.settings import REPO_ROOT
from tests.inproc import InProc, inproc

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend(
        session_answer=lambda code: ExecutionResult(status=Status.OK, exit_code=0, stdout=code)
    )


@pytest.fixture
def service(tmp_path: Path, backend: FakeBackend) -> Iterator[InProc]:
    with inproc(tmp_path / "state", backend) as running:
        yield running


def _create(service: InProc, key: str | None = None, **body: Any) -> Any:
    kwargs = {"key": key} if key else {}
    return service.request("POST", "/sessions", json=body, **kwargs)


def _session(service: InProc, **body: Any) -> str:
    response = _create(service, **body)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session_id"]
    return session_id


def _requests(service: InProc) -> list[Any]:
    return [r for r in service.records() if r.request_id is not None]


def test_when_a_session_runs_twice_then_each_execution_is_counted_and_audited(
    service: InProc,
) -> None:
    created = _create(service).json()
    assert created["state"] == "active" and created["expires_at"].endswith("Z")
    path = f"/sessions/{created['session_id']}/execute"
    first = service.request("POST", path, json={"code": "x = 41"}).json()
    second = service.request("POST", path, json={"code": "print(x + 1)"}).json()
    assert (first["execution_count"], second["execution_count"]) == (1, 2)
    assert second["stdout"] == "print(x + 1)"  # the fake echoes; real state: tests/api
    actions = [(r.action, r.details.get("execution_count")) for r in _requests(service)]
    assert actions == [("session.create", None), ("session.execute", 1), ("session.execute", 2)]
    shown = service.request("GET", f"/sessions/{created['session_id']}").json()
    assert shown["execution_count"] == 2


def test_when_another_tenant_asks_for_a_session_then_it_is_404_like_an_unknown_one(
    service: InProc,
) -> None:
    session_id = _session(service)
    other = service.new_key("other", tenant="acme")
    for method, path, kwargs in [
        ("GET", f"/sessions/{session_id}", {}),
        ("POST", f"/sessions/{session_id}/execute", {"json": {"code": "1"}}),
        ("PUT", f"/sessions/{session_id}/files/a.txt", {"content": b"x"}),
        ("GET", f"/sessions/{session_id}/files/a.txt", {}),
        ("DELETE", f"/sessions/{session_id}", {}),
    ]:
        theirs = service.request(method, path, key=other, **kwargs)
        unknown = service.request(method, path.replace(session_id, "ss_nope"), **kwargs)
        assert theirs.status_code == unknown.status_code == 404, (method, path)
        assert theirs.json()["error"]["type"] == "session_not_found"
    assert service.request("GET", "/sessions", key=other).json() == {"sessions": []}
    assert len(service.request("GET", "/sessions").json()["sessions"]) == 1


def test_when_a_session_is_deleted_then_it_answers_410_with_the_reason(
    service: InProc, backend: FakeBackend
) -> None:
    session_id = _session(service)
    assert service.request("DELETE", f"/sessions/{session_id}").status_code == 204
    assert backend.sessions[0].closed
    gone = service.request("POST", f"/sessions/{session_id}/execute", json={"code": "1"})
    assert gone.status_code == 410
    assert gone.json()["error"]["type"] == "session_ended"
    assert gone.json()["error"]["details"] == [{"reason": "deleted"}]
    end = [r for r in service.records() if r.action == "session.end"]
    assert [r.status for r in end] == ["deleted"]


def test_when_idle_or_expired_then_the_reaper_ends_it_and_audits_why(service: InProc) -> None:
    idle = _session(service, idle_timeout_s=5)
    ttl = _session(service, ttl_s=5)
    manager = service.services.sessions
    service.client.portal.call(manager.reap, time.time() + 6)  # type: ignore[union-attr]
    for session_id, reason in [(idle, "idle"), (ttl, "ttl")]:
        answer = service.request("GET", f"/sessions/{session_id}")
        assert answer.status_code == 410 and answer.json()["error"]["details"][0]["reason"] in (
            reason,
            "idle",
        )
    ends = sorted(r.status or "" for r in service.records() if r.action == "session.end")
    assert ends == ["idle", "ttl"] or ends == ["idle", "idle"]


def test_when_its_sandbox_dies_then_the_session_ends_with_that_reason(
    service: InProc, backend: FakeBackend
) -> None:
    session_id = _session(service)
    backend.sessions[0].end("memory_limit")
    answer = service.request("POST", f"/sessions/{session_id}/execute", json={"code": "1"})
    assert answer.status_code == 410
    assert answer.json()["error"]["details"] == [{"reason": "memory_limit"}]
    assert service.request("GET", f"/sessions/{session_id}").status_code == 410


def test_when_a_second_execution_comes_while_one_runs_then_it_waits_then_409(
    tmp_path: Path,
) -> None:
    release = threading.Event()

    async def slow(code: str) -> ExecutionResult:
        while not release.is_set():  # the session is busy until the test lets it go
            await asyncio.sleep(0.01)
        return ExecutionResult(status=Status.OK, exit_code=0)

    backend = FakeBackend(session_answer=slow)
    with inproc(tmp_path / "state", backend, queue_timeout_s=0.3) as service:
        path = f"/sessions/{_session(service)}/execute"
        first = threading.Thread(
            target=service.request, args=("POST", path), kwargs={"json": {"code": "1"}}
        )
        first.start()
        time.sleep(0.2)
        second = service.request("POST", path, json={"code": "2"})
        release.set()
        first.join()
    assert second.status_code == 409
    assert second.json()["error"]["type"] == "session_busy"


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"idle_timeout_s": 10_000}, 422, "invalid_request"),
        ({"ttl_s": 1e9}, 422, "invalid_request"),
        ({"language": "cobol"}, 422, "invalid_request"),
        ({"policy": "no-such-policy"}, 403, "policy_refused"),
    ],
)
def test_when_a_session_asks_for_more_than_the_policy_then_refused_before_any_sandbox(
    service: InProc, backend: FakeBackend, body: dict[str, Any], status: int, kind: str
) -> None:
    response = _create(service, **body)
    assert response.status_code == status and response.json()["error"]["type"] == kind
    assert backend.sessions == []


def test_when_a_key_holds_its_policy_s_sessions_then_one_more_is_429_quota_exceeded(
    service: InProc,
) -> None:
    for _ in range(4):  # the default policy's sessions.max_per_key
        _session(service)
    refused = _create(service)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "quota_exceeded"
    assert "sessions per key" in refused.json()["error"]["message"]


def test_when_the_host_s_session_memory_is_used_then_one_more_is_429_busy(tmp_path: Path) -> None:
    with inproc(tmp_path / "state", sessions_memory_mb=600) as service:
        _session(service)  # 512 MiB of the default policy
        refused = _create(service)
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "busy"
    assert "retry-after" in refused.headers


def test_when_files_go_in_and_out_then_bytes_round_trip_and_are_audited_by_hash(
    service: InProc, backend: FakeBackend
) -> None:
    session_id = _session(service)
    blob = bytes(range(256)) * 4
    written = service.request("PUT", f"/sessions/{session_id}/files/data/blob.bin", content=blob)
    assert written.status_code == 201, written.text
    assert written.json()["sha256"] == hashlib.sha256(blob).hexdigest()
    assert backend.sessions[0].files["data/blob.bin"] == blob
    read = service.request("GET", f"/sessions/{session_id}/files/data/blob.bin")
    assert read.status_code == 200 and read.content == blob
    records = [r for r in _requests(service) if r.action.startswith("session.file")]
    assert [(r.action, r.details["sha256"]) for r in records] == [
        ("session.file.upload", hashlib.sha256(blob).hexdigest()),
        ("session.file.download", hashlib.sha256(blob).hexdigest()),
    ]


def test_when_an_uploaded_text_holds_a_secret_then_blocked_and_nothing_written(
    service: InProc, backend: FakeBackend
) -> None:
    session_id = _session(service)
    answer = service.request(
        "PUT", f"/sessions/{session_id}/files/conf.py", content=f"key = '{AWS_KEY}'".encode()
    )
    assert answer.status_code == 403 and answer.json()["error"]["type"] == "screening_blocked"
    assert backend.sessions[0].files == {}
    (record,) = [r for r in _requests(service) if r.action == "session.file.upload"]
    assert record.verdict == "block" and AWS_KEY not in str(record.details)


def test_when_a_downloaded_text_holds_pii_then_it_is_redacted(
    service: InProc, backend: FakeBackend
) -> None:
    session_id = _session(service)
    backend.sessions[0].files["report.txt"] = b"contact bob@example.com today"
    read = service.request("GET", f"/sessions/{session_id}/files/report.txt")
    assert read.status_code == 200
    assert read.content == b"contact <EMAIL_ADDRESS> today"


@pytest.mark.parametrize(
    ("path", "status"),
    [("a\\b", 422), ("d" * 300, 422), ("\u20ac" * 100, 422), ("missing.txt", 404)],
)
def test_when_a_file_path_is_bad_or_missing_then_4xx(
    service: InProc, path: str, status: int
) -> None:
    session_id = _session(service)
    answer = service.request("GET", f"/sessions/{session_id}/files/{path}")
    assert answer.status_code == status, answer.text


def test_when_an_upload_passes_the_policy_s_file_cap_then_413(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", policies)
    default = policies / "default.yaml"
    default.write_text(default.read_text() + "\nsessions: {max_file_bytes: 1000}\n")
    with inproc(tmp_path / "state", policy_dir=policies) as service:
        session_id = _session(service)
        answer = service.request("PUT", f"/sessions/{session_id}/files/big", content=b"x" * 1001)
    assert answer.status_code == 413


def test_when_the_service_restarts_then_its_sessions_end_with_reason_restart(
    tmp_path: Path, backend: FakeBackend
) -> None:
    state = tmp_path / "state"
    with inproc(state, backend) as service:
        session_id = _session(service)
    assert backend.sessions[0].closed
    with inproc(state, backend) as again:
        answer = again.request("GET", f"/sessions/{session_id}")
        ends = [r.status for r in again.records() if r.action == "session.end"]
    assert answer.status_code == 410
    assert answer.json()["error"]["details"] == [{"reason": "restart"}]
    assert ends == ["restart"]


def test_when_the_backend_holds_no_sessions_then_501_names_one_that_does(tmp_path: Path) -> None:
    class OneShotOnly(FakeBackend):
        start_session = FakeBackend.__mro__[1].start_session  # the contract's default

    with inproc(tmp_path / "state", OneShotOnly()) as service:
        answer = _create(service)
    assert answer.status_code == 501
    assert "runsc" in answer.json()["error"]["message"]


def test_when_binary_files_come_with_an_execution_then_the_sandbox_gets_the_bytes(
    service: InProc, backend: FakeBackend
) -> None:
    session_id = _session(service)
    blob = b"\x00\xff\x10binary"
    body = {"code": "1", "files": {"in.bin": {"content_base64": base64.b64encode(blob).decode()}}}
    answer = service.request("POST", f"/sessions/{session_id}/execute", json=body)
    assert answer.status_code == 200, answer.text
    assert backend.sessions[0].files["in.bin"] == blob
