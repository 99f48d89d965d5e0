"""A private redis-server for the tests, from Debian's package, on 127.0.0.1 and a free port.

Debian's policy-rc.d keeps the package from starting a server of its own; each test session
that needs one starts it here (no persistence, in a temporary directory) and stops it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.helpers import free_port

__all__ = ["REDIS_HINT", "redis_server"]

REDIS_HINT = "install Debian's redis-server (.ci/setup test does)"


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A running redis-server until the block ends; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(f"redis-server not found: {REDIS_HINT}")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="sandgate-redis-"))
    process = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--protected-mode",
            "yes",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)
