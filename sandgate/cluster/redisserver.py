"""A private redis-server from Debian's package, for `sandgate cluster up` and the tests.

It listens on 127.0.0.1 only, on a port kept in its directory (so a restart finds it again),
with `appendonly yes` and `appendfsync everysec`: a restart (SIGTERM, which writes the file
out) keeps the streams, groups and states; a crash can lose the last second of writes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from sandgate.cluster._proc import alive as _alive
from sandgate.cluster._proc import free_port

__all__ = ["RedisMissing", "RedisServer"]

SETUP_HINT = "run .ci/setup test (as root) to install Debian's redis-server package"


class RedisMissing(RuntimeError):
    """redis-server is not installed."""


class RedisServer:
    """One redis-server with its data in `root`."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisMissing(f"redis-server not found: {SETUP_HINT}")
        self.binary = binary
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        port_file = root / "port"
        self.port = int(port_file.read_text()) if port_file.exists() else free_port()
        port_file.write_text(str(self.port))
        self.process: subprocess.Popen[bytes] | None = None  # when started by this process

    @property
    def url(self) -> str:
        """The server's URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The running server's pid, from its pid file."""
        pid_file = self.root / "redis.pid"
        with contextlib.suppress(FileNotFoundError, ValueError):
            return int(pid_file.read_text().strip())
        return None

    def start(self, timeout: float = 20) -> str:
        """Start the server (on the data already in `root`, if any); its URL once it answers."""
        config = self.root / "redis.conf"
        config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    "protected-mode yes",
                    f"dir {self.root}",
                    f"pidfile {self.root / 'redis.pid'}",
                    f"logfile {self.root / 'redis.log'}",
                    "daemonize no",
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "",
                ]
            )
        )
        self.process = subprocess.Popen(
            [self.binary, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not self.running():
            if time.monotonic() > deadline:
                log = self.root / "redis.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start:\n{tail}")
            time.sleep(0.05)
        return self.url

    def running(self) -> bool:
        """Whether the server answers PING."""
        try:
            with redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        """Stop the server: SIGTERM writes its data out first; SIGKILL is a crash."""
        pid = self.pid
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while self._runs(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._runs(pid):
            os.kill(pid, signal.SIGKILL)
        if self.process is not None and self.process.pid == pid:
            self.process.wait()
        (self.root / "redis.pid").unlink(missing_ok=True)

    def _runs(self, pid: int) -> bool:
        if self.process is not None and self.process.pid == pid:
            return self.process.poll() is None
        return _alive(pid)
