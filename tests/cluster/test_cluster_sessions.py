"""Sessions across the cluster of `conftest` (2 API nodes, 3 workers, real Redis, PostgreSQL and
gVisor): a session opened through one API node is used through the other, its interpreter's
state and its files kept, streamed or not, every call recorded once by the worker holding it;
and a session whose worker is killed answers 410 `killed` on every API node, its end recorded
once, nothing left once the worker restarts. The routing's logic, and Redis or PostgreSQL
away, run in process on the scripted backend (`tests/dispatch/test_session_calls.py`)."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest

from sandgate.cluster.local import Node
from sandgate.db.postgres import PostgresDatabase
from sandgate.sessions.registry import SessionRegistry
from tests.cluster.conftest import Running, once_each
from tests.helpers import leftovers_of, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.redis,
    pytest.mark.sandbox,
    pytest.mark.postgres,
    pytest.mark.slow,
]


def _open(cluster: Running) -> str:
    with cluster.client(cluster.api[0]) as client:
        answer = client.post("/sessions", json={})
    assert answer.status_code == 201, answer.text
    session_id: str = answer.json()["session_id"]
    return session_id


def _holder(cluster: Running, session_id: str) -> Node:
    """The worker the shared registry says holds the session."""
    registry = SessionRegistry(PostgresDatabase(cluster.local.manifest().audit_dsn, "sessions"))
    try:
        record = registry.get(session_id)
    finally:
        registry.close()
    assert record is not None and record.node is not None
    return next(w for w in cluster.workers if w.name == record.node)


def test_when_a_session_is_opened_through_one_api_node_then_the_other_uses_it_state_kept(
    cluster: Running,
) -> None:
    first, second = cluster.api
    session_id = _open(cluster)
    path = f"/sessions/{session_id}"
    rid = f"sess-{session_id[-8:]}"
    with cluster.client(first) as a, cluster.client(second) as b:
        put = a.put(f"{path}/files/in.bin", content=bytes(range(256)))
        assert put.status_code == 201, put.text
        runs = [
            b.post(
                f"{path}/execute",
                json={"code": "x = 41\nprint(len(open('in.bin', 'rb').read()))"},
                headers={"X-Request-ID": f"{rid}-1"},
            ),
            a.post(
                f"{path}/execute",
                json={"code": "print(x + 1)\nopen('out.txt', 'w').write('kept')"},
                headers={"X-Request-ID": f"{rid}-2"},
            ),
        ]
        assert [r.status_code for r in runs] == [200, 200], runs[0].text
        assert [r.json()["stdout"] for r in runs] == ["256\n", "42\n"]
        assert [r.json()["execution_count"] for r in runs] == [1, 2]
        assert b.get(f"{path}/files/out.txt").content == b"kept"
        streamed = b.post(
            f"{path}/execute",
            json={"code": "print(x)"},
            headers={"Accept": "application/x-ndjson", "X-Request-ID": f"{rid}-3"},
        )
        events = [json.loads(line) for line in streamed.text.splitlines()]
        assert [e["type"] for e in events] == ["stdout", "end"], streamed.text
        assert events[0]["text"] == "41\n" and events[1]["response"]["execution_count"] == 3
        assert a.get(path).json()["execution_count"] == 3
        assert b.delete(path).status_code == 204
        gone = a.post(f"{path}/execute", json={"code": "1"})
    assert gone.status_code == 410 and gone.json()["error"]["details"] == [{"reason": "deleted"}]
    records = cluster.executions(rid, action="session.execute")
    assert once_each(records) == Counter({f"{rid}-{i}": 1 for i in (1, 2, 3)})


def test_when_a_sessions_worker_is_killed_then_it_answers_410_killed_recorded_once(
    cluster: Running,
) -> None:
    first, second = cluster.api
    session_id = _open(cluster)
    path = f"/sessions/{session_id}"
    with cluster.client(second) as b:
        assert b.post(f"{path}/execute", json={"code": "x = 1"}).status_code == 200
    victim = _holder(cluster, session_id)
    assert victim.pid is not None
    try:
        os.kill(victim.pid, signal.SIGKILL)
        cluster.local.wait(victim.pid)
        with cluster.client(second) as b:
            answer = b.post(f"{path}/execute", json={"code": "print(x)"})
        assert answer.status_code == 410, answer.text
        assert answer.json()["error"]["details"] == [{"reason": "killed"}]
        with cluster.client(first) as a:
            shown = a.get(path)
        assert shown.status_code == 410 and shown.json()["error"]["details"] == [
            {"reason": "killed"}
        ]
    finally:
        cluster.restart(victim)  # as its supervisor would: the new process reaps what was left
    ends = [
        r
        for r in cluster.executions(action="session.end")
        if r.details.get("session_id") == session_id
    ]
    assert [r.status for r in ends] == ["killed"]
    wait_for(lambda: not [x for n in cluster.workers for x in leftovers_of(n.state_dir)])
