"""A private redis-server for a test or benchmark: `sandgate.cluster.redisserver.RedisServer` (the
one `sandgate cluster up` runs) in a temporary directory, stopped and removed after the block."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sandgate.cluster.redisserver import RedisServer

__all__ = ["redis_server"]


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A running redis-server on 127.0.0.1 until the block ends; yields its URL."""
    root = Path(tempfile.mkdtemp(prefix="sandgate-redis-"))
    server = RedisServer(root)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
