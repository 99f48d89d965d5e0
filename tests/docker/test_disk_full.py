"""The Docker root's disk full: a second, real dockerd whose data root is a small loop-mounted
ext4 file system, filled up after the sandbox image is imported. A run then fails cleanly with
`SandboxUnavailable` naming the full disk, leaves nothing behind, and works again once there
is room.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandbox.base import ExecutionSpec, SandboxUnavailable, Status
from sandbox.docker import DockerBackend
from sandbox.image import ImageStore

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RUNTIME_ARGS = ["--network=none", "--platform=ptrace"]


@pytest.fixture
def small_dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A dockerd on a 400 MB data root of its own: (its address, the mounted data root)."""
    # Short paths: the daemon's sockets live under them.
    base = Path(f"/tmp/sg-full-{uuid.uuid4().hex[:6]}")
    mnt, exec_root = base / "mnt", base / "exec"
    mnt.mkdir(parents=True)
    exec_root.mkdir()
    subprocess.run(["truncate", "-s", "400M", str(base / "disk.img")], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-m", "0", "-F", str(base / "disk.img")], check=True)
    subprocess.run(["mount", "-o", "loop", str(base / "disk.img"), str(mnt)], check=True)
    runtimes = {
        "runsc": {"path": "/usr/bin/runsc", "runtimeArgs": RUNTIME_ARGS},
        "runsc-uds": {"path": "/usr/bin/runsc", "runtimeArgs": [*RUNTIME_ARGS, "--host-uds=open"]},
    }
    (base / "daemon.json").write_text(json.dumps({"runtimes": runtimes}))
    sock = f"unix://{base}/docker.sock"
    with (base / "dockerd.log").open("wb") as log:
        daemon = subprocess.Popen(
            [
                # Its own network namespace: a second daemon on the host's would delete the
                # first one's docker0 bridge. Sandboxes have no network anyway.
                "unshare",
                "--net",
                "dockerd",
                f"--config-file={base / 'daemon.json'}",
                f"--data-root={mnt / 'docker'}",
                f"--exec-root={exec_root}",
                f"--pidfile={base / 'docker.pid'}",
                f"--host={sock}",
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not (base / "docker.sock").exists() or _answers(sock) is False:
            assert daemon.poll() is None, (base / "dockerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the small dockerd did not start"
            time.sleep(0.2)
        yield sock, mnt
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        for _ in range(50):  # the daemon's containerd lets go of the mount a moment later
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        subprocess.run(["rm", "-rf", str(base)], check=True)


def _answers(sock: str) -> bool:
    done = subprocess.run(
        ["docker", "-H", sock, "info"], capture_output=True, env={**os.environ, "DOCKER_HOST": ""}
    )
    return done.returncode == 0


def _fill(mnt: Path) -> Path:
    """Take every free block of the data root; return the file that holds them."""
    filler = mnt / "filler"
    for size in (1 << 20, 4096, 1):  # smaller and smaller, down to the last byte
        with contextlib.suppress(OSError), filler.open("ab", buffering=0) as out:
            while True:
                out.write(b"\0" * size)
                os.fsync(out.fileno())
    return filler


def test_when_docker_root_is_full_then_unavailable_says_so_and_nothing_is_left(
    tmp_path: Path,
    images: ImageStore,
    small_dockerd: tuple[str, Path],
    make_docker_backend: Callable[..., DockerBackend],
) -> None:
    sock, mnt = small_dockerd
    backend = make_docker_backend(tmp_path, base_url=sock)
    images.ensure_docker("python", backend.api, progress=lambda _line: None)

    def run() -> str:
        spec = ExecutionSpec(execution_id=uuid.uuid4().hex, code="print('room')")
        result = asyncio.run(backend.run(spec))
        assert result.status is Status.OK, result
        return result.stdout

    assert run() == "room\n"
    filler = _fill(mnt)
    assert os.statvfs(mnt).f_bavail == 0
    with pytest.raises(SandboxUnavailable, match="Docker data root is full"):
        run()
    assert backend.leftovers() == []
    filler.unlink()
    assert run() == "room\n"
    assert backend.leftovers() == []
