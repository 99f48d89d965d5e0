"""The Docker backend's latency beside the runsc-direct backend's, measured in the same run:
`backend.run` for print(1), then `POST /execute` through the real service on each backend.

Run it alone with `.venv/bin/python -m tests.bench.bench_docker` (it starts dockerd and imports
the sandbox image first, through `.ci/docker`, when they are not there yet).
"""

from __future__ import annotations

import asyncio
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from sandbox.base import ExecutionSpec, SandboxBackend
from sandbox.docker import DockerBackend
from sandbox.image import ImageStore
from sandbox.runsc import RunscBackend
from sandgate.settings import REPO_ROOT
from tests.bench._stats import summary
from tests.conftest import ADMIN_KEY, SHARED_IMAGES
from tests.helpers import LiveServer, start_server

__all__ = ["run"]

RUNS = 40


def _state_dir() -> Path:
    state = Path(tempfile.mkdtemp(prefix="sandgate-bench-"))
    (state / "images").symlink_to(SHARED_IMAGES)
    return state


async def _timed_runs(backend: SandboxBackend) -> list[float]:
    samples = []
    for i in range(RUNS + 1):
        spec = ExecutionSpec(execution_id=uuid.uuid4().hex, code="print(1)")
        started = time.perf_counter()
        result = await backend.run(spec)
        if i:  # the first run warms the page cache
            samples.append(time.perf_counter() - started)
        assert result.stdout == "1\n", result
    return samples


def _timed_execute(live: LiveServer) -> list[float]:
    samples = []
    with live.client() as client:
        for i in range(RUNS + 1):
            started = time.perf_counter()
            response = client.post("/execute", json={"code": "print(1)"})
            if i:
                samples.append(time.perf_counter() - started)
            assert response.json()["status"] == "ok", response.text
    return samples


def _row(label: str, samples: list[float]) -> str:
    p50, p95 = summary(samples)
    return f"  {label:<34}{p50:8.1f} {p95:8.1f}"


def run() -> None:
    """Print p50/p95 of print(1) on runsc direct and on Docker+runsc, in-process and over HTTP."""
    subprocess.run([str(REPO_ROOT / ".ci" / "docker")], check=True)
    images = ImageStore(REPO_ROOT / "images", REPO_ROOT / ".state")
    runsc_state, docker_state = _state_dir(), _state_dir()
    runsc = RunscBackend(state_dir=runsc_state, images=ImageStore(images.recipes_dir, runsc_state))
    docker = DockerBackend(
        state_dir=docker_state, images=ImageStore(images.recipes_dir, docker_state)
    )
    images.ensure_docker("python", docker.api, progress=lambda _line: None)
    runsc.reap()
    docker.reap()
    rows = [
        ("backend.run, runsc direct", asyncio.run(_timed_runs(runsc))),
        ("backend.run, docker (runtime runsc)", asyncio.run(_timed_runs(docker))),
    ]
    docker.close()
    env = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_LOG_LEVEL": "warning"}
    for name in ("runsc", "docker"):
        with start_server(_state_dir(), {**env, "SANDGATE_BACKEND": name}) as live:
            rows.append((f"POST /execute, {name}", _timed_execute(live)))
    print(f"print(1) over {RUNS} runs each              p50 ms   p95 ms")
    for label, samples in rows:
        print(_row(label, samples))
    base, other = summary(rows[2][1])[0], summary(rows[3][1])[0]
    print(f"  docker / runsc at p50 over HTTP   {other / base:8.2f}x")


if __name__ == "__main__":
    run()
