"""Role `all` with Redis: the single process queues `/executions` in Redis and takes them back
as a worker (a scripted backend in place of the sandbox), and `/ready` and `/metrics` show the
queue and this process among the live workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sandbox.base import ExecutionResult, Status
from sandbox.fake import FakeBackend
from sandgate.cluster.redisserver import RedisServer
from tests.helpers import wait_for
from tests.inproc import InProc, inproc

pytestmark = pytest.mark.redis


def _ended(service: InProc, execution_id: str) -> dict[str, Any] | None:
    state: dict[str, Any] = service.request("GET", f"/executions/{execution_id}").json()
    return state if state["status"] in ("done", "failed") else None


def test_when_role_all_has_redis_then_it_queues_there_and_runs_what_it_queued(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    backend = FakeBackend(lambda _s: ExecutionResult(status=Status.OK, exit_code=0, stdout="9\n"))
    settings = {"redis_url": redis_server.url, "node_name": "solo"}
    with inproc(tmp_path / "state", backend, **settings) as service:
        submitted = service.request("POST", "/executions", json={"code": "print(9)"})
        assert submitted.status_code == 202
        execution_id = submitted.json()["execution_id"]
        state = wait_for(lambda: _ended(service, execution_id), "the execution's end")
        assert state["response"]["stdout"] == "9\n" and len(backend.runs) == 1
        ready = service.client.get("/ready").json()
        assert ready["checks"]["queue"] == {"ok": True, "engine": "redis", "depth": 0}
        assert [w["name"] for w in ready["checks"]["workers"]["live"]] == ["solo"]
        metrics = service.request("GET", "/metrics").text
        assert "sandgate_queue_up 1.0" in metrics
        assert "sandgate_worker_capacity{pid=" in metrics and 'worker="solo"' in metrics
        assert "sandgate_dispatch_wait_seconds_count 1.0" in metrics
        direct = service.request("POST", "/execute", json={"code": "print(9)"})
        assert direct.json()["stdout"] == "9\n"  # /execute runs in process, no hop


def test_when_redis_is_down_then_executions_are_refused_503_and_ready_says_why(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with inproc(tmp_path / "state", redis_url=redis_server.url) as service:
        redis_server.stop()
        refused = service.request("POST", "/executions", json={"code": "1"})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["type"] == "unavailable"
        assert "Redis" in refused.json()["error"]["message"]
        ready = service.client.get("/ready")
        assert ready.status_code == 503 and ready.json()["checks"]["queue"]["ok"] is False
        assert "sandgate_queue_up 0.0" in service.request("GET", "/metrics").text
        redis_server.start()
        assert service.request("POST", "/executions", json={"code": "1"}).status_code == 202
