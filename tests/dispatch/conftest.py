"""A private redis-server for the dispatcher tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandgate.cluster.redisserver import RedisMissing, RedisServer


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
