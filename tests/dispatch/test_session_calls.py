"""Sessions across nodes, in process: two API nodes and two workers on a real redis-server and a
real PostgreSQL (keys, the sessions' registry and the audit log shared), the workers on the
scripted backend. A session opened through one API node lives on one worker and is used
through the other API node (its interpreter's count and its files kept), streamed or not; a
refusal is the worker's own answer; and a session whose worker dies answers 410 `killed`,
its end recorded once; Redis or PostgreSQL away is a 503 that did nothing, and the same
session serves again once the engine is back, no node restarted. The behaviour across real
processes on gVisor is `tests/cluster/test_cluster_sessions.py`."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from sandbox.base import ExecutionResult, Status
from sandbox.fake import FakeBackend
from sandgate.cluster.pgserver import PgServer
from sandgate.cluster.redisserver import RedisServer
from sandgate.dispatch import _scripts as keys
from sandgate.dispatch.streams import RedisDispatcher
from sandgate.sessions.registry import SessionRecord
from tests.helpers import wait_for
from tests.inproc import InProc, inproc

pytestmark = [pytest.mark.redis, pytest.mark.postgres]

HMAC = "cluster-audit-hmac-key-for-tests"


@dataclass
class Nodes:
    """The running nodes: `api[i]`, `workers[i]` and their scripted backends."""

    api: list[InProc]
    workers: list[InProc]
    backends: list[FakeBackend]

    def holder(self, session_id: str) -> int:
        """Which worker holds the session's sandbox."""
        (index,) = [
            i for i, b in enumerate(self.backends) for s in b.sessions if s.session_id == session_id
        ]
        return index


def _echo(code: str) -> ExecutionResult:
    return ExecutionResult(status=Status.OK, exit_code=0, stdout=f"ran {code}\n")


@contextlib.contextmanager
def _running(tmp_path: Path, redis_url: str, dsn: str) -> Iterator[Nodes]:
    shared = {
        "redis_url": redis_url,
        "audit_dsn": dsn,
        "audit_hmac_key": HMAC,
        "worker_dead_after_s": 1,
    }
    backends = [FakeBackend(session_answer=_echo) for _ in range(2)]
    with contextlib.ExitStack() as stack:
        workers = [
            stack.enter_context(
                inproc(tmp_path / f"w{i}", b, role="worker", node_name=f"worker-{i}", **shared)
            )
            for i, b in enumerate(backends)
        ]
        api = [
            stack.enter_context(
                inproc(tmp_path / f"a{i}", role="api", node_name=f"api-{i}", **shared)
            )
            for i in range(2)
        ]
        wait_for(lambda: len(_live(api[0])) == 2, "both workers")
        yield Nodes(api, workers, backends)


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer, pg_dsn: str) -> Iterator[Nodes]:
    with _running(tmp_path, redis_server.url, pg_dsn) as running:
        yield running


def _live(node: InProc) -> list[Any]:
    live: list[Any] = node.client.get("/ready").json()["checks"]["workers"]["live"]
    return live


def _crash(worker: InProc) -> None:
    """Stop a worker as a kill would: its heartbeat and readers stop, nothing says goodbye."""
    dispatch = worker.services.dispatch
    assert isinstance(dispatch, RedisDispatcher) and dispatch._worker is not None
    stopped = [*dispatch._worker._loops]
    if dispatch._call_server is not None and dispatch._call_server._reader is not None:
        stopped.append(dispatch._call_server._reader)

    async def stop() -> None:
        for task in stopped:
            task.cancel()

    assert worker.client.portal is not None
    worker.client.portal.call(stop)


def test_when_a_session_is_opened_through_one_api_node_then_the_other_uses_it(
    nodes: Nodes,
) -> None:
    first, second = nodes.api
    created = first.request("POST", "/sessions", json={})
    assert created.status_code == 201, created.text
    session_id = created.json()["session_id"]
    holder = nodes.holder(session_id)
    path = f"/sessions/{session_id}"
    assert first.request("PUT", f"{path}/files/data.txt", content=b"kept").status_code == 201
    runs = [
        node.request("POST", f"{path}/execute", json={"code": f"step {i}"})
        for i, node in enumerate((second, first, second))
    ]
    assert [r.status_code for r in runs] == [200, 200, 200], runs[0].text
    assert [r.json()["execution_count"] for r in runs] == [1, 2, 3]
    assert runs[0].json()["stdout"] == "ran step 0\n"
    assert second.request("GET", f"{path}/files/data.txt").content == b"kept"
    (sandbox,) = nodes.backends[holder].sessions
    assert sandbox.codes == ["step 0", "step 1", "step 2"]  # one sandbox served every call
    assert nodes.backends[1 - holder].sessions == []
    shown = second.request("GET", path).json()
    assert shown["execution_count"] == 3 and shown["state"] == "active"
    listed = first.request("GET", "/sessions").json()["sessions"]
    assert [s["session_id"] for s in listed] == [session_id]
    records = [r for r in first.records() if r.request_id == runs[0].headers["X-Request-ID"]]
    assert [r.action for r in records] == ["session.execute"]  # the worker's, and only it
    assert second.request("DELETE", path).status_code == 204
    gone = first.request("POST", f"{path}/execute", json={"code": "1"})
    assert gone.status_code == 410 and gone.json()["error"]["details"] == [{"reason": "deleted"}]


def test_when_a_held_session_streams_through_an_api_node_then_lines_then_the_end(
    nodes: Nodes,
) -> None:
    first, second = nodes.api
    session_id = first.request("POST", "/sessions", json={}).json()["session_id"]
    path = f"/sessions/{session_id}/execute"
    stream = {"Accept": "application/x-ndjson"}
    answer = second.request("POST", path, json={"code": "print(1)"}, headers=stream)
    assert answer.status_code == 200
    events = [json.loads(line) for line in answer.text.splitlines()]
    assert [e["type"] for e in events] == ["stdout", "end"]
    assert events[0]["text"] == "ran print(1)\n"
    assert events[1]["response"]["execution_count"] == 1
    refused = second.request("POST", path, json={"code": "1", "language": "bash"}, headers=stream)
    assert refused.status_code == 422  # the worker's refusal, before any stream starts
    assert refused.json()["error"]["details"][0]["loc"] == ["body", "language"]


def test_when_a_sessions_worker_dies_then_calls_answer_410_killed_recorded_once(
    nodes: Nodes, redis_server: RedisServer
) -> None:
    first, second = nodes.api
    session_id = first.request("POST", "/sessions", json={}).json()["session_id"]
    holder = nodes.workers[nodes.holder(session_id)]
    _crash(holder)
    client = redis.Redis.from_url(redis_server.url)
    consumer = holder.services.dispatch.consumer
    client.delete(keys.worker_key(consumer))  # its heartbeat lapses (dead_after is 1 s)
    client.close()
    answer = second.request("POST", f"/sessions/{session_id}/execute", json={"code": "1"})
    assert answer.status_code == 410, answer.text
    assert answer.json()["error"]["details"] == [{"reason": "killed"}]
    again = first.request("GET", f"/sessions/{session_id}")
    assert again.status_code == 410 and again.json()["error"]["details"] == [{"reason": "killed"}]
    ends = [r for r in first.records() if r.action == "session.end"]
    assert [(r.status, r.details["session_id"]) for r in ends] == [("killed", session_id)]


def test_when_a_registered_worker_never_beats_then_the_sweep_ends_its_sessions(
    nodes: Nodes,
) -> None:
    registry = nodes.api[0].services.sessions.registry
    orphan = SessionRecord(
        id="ss_orphan",
        tenant="default",
        key_id="k",
        key_name="agent",
        policy="default",
        policy_hash="0" * 64,
        language="python",
        image="python",
        memory_mb=256,
        created_at=0.0,
        expires_at=9e9,
        idle_timeout_s=600,
        last_used_at=9e9,
        node="ghost",
        worker="ghost:1:abcdef",
    )
    registry.add(orphan)
    ended = wait_for(lambda: (r := registry.get("ss_orphan")) and r.end_reason, "the sweep")
    assert ended == "killed"
    ends = [r for r in nodes.api[0].records() if r.action == "session.end"]
    assert [r.details["session_id"] for r in ends] == ["ss_orphan"]  # once, among four nodes


def _records_of(node: InProc, request_id: str) -> list[Any]:
    return [r for r in node.records() if r.request_id == request_id]


def _unavailable_then_back(nodes: Nodes, away: Any, back: Any, recorded: list[Any]) -> None:
    """With an engine away, a routed call is a 503 that ran nothing (`recorded`: the records of
    the refused request), a new session is refused; once it is back the session (never ended)
    goes on where it was."""
    first, second = nodes.api
    session_id = first.request("POST", "/sessions", json={}).json()["session_id"]
    path = f"/sessions/{session_id}/execute"
    assert second.request("POST", path, json={"code": "before"}).json()["execution_count"] == 1
    (sandbox,) = nodes.backends[nodes.holder(session_id)].sessions
    away()
    try:
        refused = second.request("POST", path, json={"code": "during"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["type"] == "unavailable"
        assert first.request("POST", "/sessions", json={}).status_code == 503
        assert sandbox.codes == ["before"]  # nothing ran
    finally:
        back()
    after = wait_for(
        lambda: (
            (r := second.request("POST", path, json={"code": "after"})).status_code == 200 and r
        ),
        "the session served again",
    )
    assert after.json()["execution_count"] == 2 and sandbox.codes == ["before", "after"]
    records = _records_of(first, refused.headers["X-Request-ID"])
    assert [(r.action, r.status) for r in records] == recorded
    shown = first.request("GET", f"/sessions/{session_id}").json()
    assert shown["state"] == "active"  # the outage killed no worker's sessions


def test_when_redis_goes_away_then_session_calls_503_and_resume_without_restart(
    nodes: Nodes, redis_server: RedisServer
) -> None:
    def away() -> None:
        redis_server.stop()

    def back() -> None:
        redis_server.start()

    _unavailable_then_back(nodes, away, back, [("request.failed", "503")])


def test_when_postgresql_goes_away_then_session_calls_503_and_resume_without_restart(
    tmp_path: Path, redis_server: RedisServer, own_pg: PgServer
) -> None:
    with _running(tmp_path, redis_server.url, own_pg.dsn) as nodes:
        # the audit log is in the PostgreSQL that is away: the refusal is only in the logs
        _unavailable_then_back(nodes, own_pg.stop, own_pg.start, [])
