"""Fixtures for the Docker deployment and fault tests: the real dockerd, stopped and restarted.

The daemon is the one `.ci/docker` set up (shared by the machine); a test that stops it always
starts it again, whatever happened, so the tests after it find it answering.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.docker import DockerBackend
from sandbox.image import ImageStore
from sandgate.settings import REPO_ROOT
from tests.sandbox.conftest import require_docker

PID_FILE = Path("/var/run/docker.pid")


@dataclass
class Dockerd:
    """The host's Docker daemon, to stop and start the way an operator or a crash would."""

    def pid(self) -> int | None:
        """The daemon's pid, when it runs."""
        with contextlib.suppress(OSError, ValueError):
            pid = int(PID_FILE.read_text())
            os.kill(pid, 0)
            return pid
        return None

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60) -> None:
        """Signal the daemon and wait until it has exited."""
        pid = self.pid()
        assert pid is not None, "dockerd is not running"
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists():
            assert time.monotonic() < deadline, "dockerd did not exit"
            time.sleep(0.1)

    def start(self) -> None:
        """Start it again the way the set-up does (and wait until it answers)."""
        subprocess.run([str(REPO_ROOT / ".ci" / "docker")], check=True, capture_output=True)


@pytest.fixture
def dockerd() -> Iterator[Dockerd]:
    """The daemon; running again after the test, whatever the test did to it."""
    daemon = Dockerd()
    assert daemon.pid() is not None, "dockerd is not running; run .ci/docker"
    yield daemon
    if daemon.pid() is None:
        daemon.start()


@pytest.fixture
def fresh_backend(tmp_path: Path, images: ImageStore) -> Iterator[DockerBackend]:
    """A Docker backend on a state directory of its own (so its leftovers are its own)."""
    backend = DockerBackend(state_dir=tmp_path, images=ImageStore(REPO_ROOT / "images", tmp_path))
    require_docker(backend)
    images.ensure_docker("python", backend.api, progress=lambda _line: None)
    backend.reap()
    yield backend
    backend.reap()
    backend.close()


@pytest.fixture
def make_docker_backend(images: ImageStore) -> Iterator[Callable[..., DockerBackend]]:
    """Makes Docker backends (`DockerBackend` arguments but `images`) and closes them after."""
    made: list[DockerBackend] = []

    def factory(state_dir: Path, **kwargs: Any) -> DockerBackend:
        store = ImageStore(images.recipes_dir, state_dir)
        made.append(DockerBackend(state_dir=state_dir, images=store, **kwargs))
        return made[-1]

    yield factory
    for backend in made:
        backend.close()
