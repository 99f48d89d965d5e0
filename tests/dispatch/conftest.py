"""A private redis-server for the dispatcher tests, and jobs to hand it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from guards import Action, ScreeningConfig
from sandbox.base import ExecutionSpec
from sandgate.cluster.redisserver import RedisMissing, RedisServer
from sandgate.dispatch.base import Job
from sandgate.keys import ApiKey, Scope
from sandgate.models import PolicyRef
from sandgate.pipeline.screening import StageScreening


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own (so stopping it harms no other test)."""
    try:
        server = RedisServer(tmp_path / "redis")
    except RedisMissing as exc:
        pytest.fail(str(exc))
    server.start()
    yield server
    server.stop()


def make_job(tenant: str = "default", webhook_url: str | None = None) -> Job:
    """A job as an API node would queue it (the code already screened)."""
    execution_id = uuid.uuid4().hex
    return Job(
        execution_id=execution_id,
        request_id=f"req-{execution_id[:8]}",
        client="127.0.0.1",
        key=ApiKey(id="k1", name="agent", tenant=tenant, scopes=[Scope.EXECUTE], created_at=0.0),
        policy=PolicyRef(name="default", hash="0" * 64),
        screening=ScreeningConfig(),
        audit_content="redacted",
        spec=ExecutionSpec(execution_id=execution_id, code="print(1)"),
        code_screening=StageScreening(verdict=Action.ALLOW),
        code_excerpts={"code": "print(1)"},
        webhook_url=webhook_url,
    )
