"""The docker-compose deployment as an operator runs it: `docker-compose up -d` (Debian's v1
client) with the service image built here, `/execute` through it, sandboxes as runsc siblings
on the host's dockerd, and a graceful stop that lets a running execution finish.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sandbox.docker import DockerBackend
from sandbox.image import ImageStore
from sandgate.settings import REPO_ROOT
from tests.conftest import ADMIN_KEY
from tests.helpers import free_port

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SERVICE_IMAGE = os.environ.get("SANDGATE_SERVICE_IMAGE", "sandgate/service:latest")


@dataclass
class Stack:
    """A running compose project: its URL, state directory and the compose command."""

    url: str
    state: Path
    compose: list[str]
    env: dict[str, str]

    def client(self) -> httpx.Client:
        """An HTTP client with the seeded admin key."""
        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def run(self, *args: str, timeout: float = 120) -> str:
        """A docker-compose command on this project; its output."""
        done = subprocess.run(
            [*self.compose, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def log_excerpt(self) -> str:
        """The service's errors (with their tracebacks) and its last lines, for a failure."""
        lines = self.run("logs", "--no-color").splitlines()
        errors = [i for i, line in enumerate(lines) if '"error"' in line or "Traceback" in line]
        picked = sorted({j for i in errors for j in range(i, min(i + 25, len(lines)))})
        return "\n".join([*(lines[j] for j in picked), "...", *lines[-20:]])[-12000:]

    def health(self) -> str:
        """The service container's health status (`starting`, `healthy`, ...)."""
        (cid,) = self.run("ps", "-q", "sandgate").split()
        state = subprocess.run(
            ["docker", "inspect", "--format", "{{json .State.Health.Status}}", cid],
            capture_output=True,
            text=True,
            check=True,
        )
        status: str = json.loads(state.stdout)
        return status


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The compose stack on a free port and a fresh state directory; torn down after."""
    found = subprocess.run(["docker", "image", "inspect", SERVICE_IMAGE], capture_output=True)
    if found.returncode != 0:
        pytest.fail(f"no service image {SERVICE_IMAGE}; run .ci/docker service-image")
    state = tmp_path_factory.mktemp("compose-state")
    port = free_port()
    project = f"sgtest{uuid.uuid4().hex[:8]}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SANDGATE_")},
        "SANDGATE_IMAGE": SERVICE_IMAGE,
        "SANDGATE_STATE_DIR": str(state),
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_PORT": str(port),
        "SANDGATE_WORKERS": "2",
    }
    compose = ["docker-compose", "-f", str(REPO_ROOT / "docker-compose.yml"), "-p", project]
    live = Stack(f"http://127.0.0.1:{port}", state, compose, env)
    try:
        live.run("up", "-d")
        deadline = time.monotonic() + 150
        while live.health() != "healthy":
            assert time.monotonic() < deadline, live.log_excerpt()
            time.sleep(1)
        yield live
        (cid,) = live.run("ps", "-q", "sandgate").split()
        inspect = ["docker", "inspect", "--format", "{{.RestartCount}}", cid]
        restarts = subprocess.run(inspect, capture_output=True, text=True, check=True).stdout
        assert restarts.strip() == "0", live.log_excerpt()
    finally:
        subprocess.run([*compose, "down", "--timeout", "60"], env=env, capture_output=True)
    sandboxes = DockerBackend(state_dir=state, images=ImageStore(REPO_ROOT / "images", state))
    try:
        assert sandboxes.leftovers() == []
    finally:
        sandboxes.close()


def test_when_stack_is_up_then_execute_runs_code_in_a_gvisor_sibling(stack: Stack) -> None:
    with stack.client() as client:
        ready = client.get("/ready").json()
        assert (ready["status"], ready["backend"]) == ("ready", "docker"), ready
        # gVisor's own kernel answers /proc/version, not the host's.
        code = "print(6 * 7); print(open('/proc/version').read())"
        body = client.post("/execute", json={"code": code}).json()
        assert (body["status"], body["stdout"].splitlines()[0]) == ("ok", "42"), body
        assert os.uname().release not in body["stdout"]
        assert body["cpu_ms"] > 0 and body["peak_memory_bytes"] > 1 << 20
        bomb = "b = []\nwhile True: b.append(bytearray(16 << 20))"
        assert client.post("/execute", json={"code": bomb}).json()["status"] == "memory_limit"
        out = "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 80), 3)\n"
        out += "    print('CONNECTED')\nexcept OSError as e:\n    print('refused')"
        assert client.post("/execute", json={"code": out}).json()["stdout"] == "refused\n"


def test_when_stack_stops_then_a_running_execution_finishes_first(stack: Stack) -> None:
    answers: list[httpx.Response] = []
    code = "import time; time.sleep(4); print('finished')"

    def execute() -> None:
        with stack.client() as client:
            answers.append(client.post("/execute", json={"code": code}))

    request = threading.Thread(target=execute)
    request.start()
    deadline = time.monotonic() + 30
    while not list((stack.state / "docker-run").iterdir()):  # the sandbox's input directory
        assert time.monotonic() < deadline, "the execution never started"
        time.sleep(0.1)
    stack.run("stop", "--timeout", "60")  # SIGTERM: uvicorn drains, then exits
    request.join(60)
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["stdout"]) == ("ok", "finished\n")
