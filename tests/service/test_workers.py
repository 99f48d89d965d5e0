"""Several workers on one state directory: a worker that starts never reaps a sibling's sandbox."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandgate.settings import REPO_ROOT
from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import leftovers_of, start_server, wait_for

pytestmark = pytest.mark.sandbox

SLEEPER = "import time; time.sleep(30); print('done')"


@pytest.fixture
def long_policies(tmp_path: Path) -> Path:
    """The shipped policies with a default that lets an execution run for a minute."""
    directory = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", directory)
    default = directory / "default.yaml"
    text = default.read_text().replace("timeout_s: 10 ", "timeout_s: 60 ")
    default.write_text(text.replace("cpu_s: 10 ", "cpu_s: 60 "))
    return directory


def test_when_a_worker_is_replaced_then_its_start_leaves_the_siblings_sandbox_running(
    tmp_path: Path, long_policies: Path, images: Any
) -> None:
    state = make_state_dir(tmp_path / "state")
    env = {
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_WORKERS": "2",
        "SANDGATE_POLICY_DIR": str(long_policies),
    }
    with start_server(state, env) as live:
        wait_for(lambda: len(live.events("service.started")) == 2, "two workers", 120)
        workers = {e["pid"] for e in live.events("service.started")}
        answers: list[httpx.Response] = []

        def execute() -> None:
            with live.client(timeout=120) as client:
                answers.append(client.post("/execute", json={"code": SLEEPER, "timeout_s": 60}))

        request = threading.Thread(target=execute)
        request.start()
        (running,) = wait_for(lambda: live.events("execute.start"), "the execution start", 120)
        (sibling,) = workers - {running["pid"]}
        os.kill(sibling, signal.SIGKILL)  # uvicorn starts a new worker in its place
        wait_for(lambda: len(live.events("service.started")) == 3, "the replacement worker", 120)
        request.join(120)
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["stdout"]) == ("ok", "done\n"), answer.json()


# What a worker has done to a slot before its launcher starts: the bundle (marked as its own)
# and the cgroup. The process then dies as a killed worker would, before it could remove them.
_HALF_STARTED = """
import asyncio, os, signal, sys
from pathlib import Path
from sandbox.image import ImageStore
from sandbox.languages import language
from sandbox.runsc import RunscBackend

async def main() -> None:
    state = Path(sys.argv[1])
    backend = RunscBackend(state_dir=state, images=ImageStore(Path(sys.argv[2]), state))
    slot = backend._new_slot(language("python"), ahead=True)
    slot.cgroup.create(memory_bytes=None, max_processes=8, cpus=None)
    print(slot.name, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


def test_when_a_worker_dies_before_its_slot_is_launched_then_a_sibling_removes_the_slot(
    tmp_path: Path, images: Any
) -> None:
    state = make_state_dir(tmp_path / "state")
    env = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_WORKERS": "2"}
    with start_server(state, env) as live:
        wait_for(lambda: len(live.events("service.started")) == 2, "two workers", 120)
        made = subprocess.run(
            [sys.executable, "-c", _HALF_STARTED, str(state), str(REPO_ROOT / "images")],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=False,
        )
        assert made.returncode == -signal.SIGKILL, made.stderr
        name = made.stdout.strip()
        orphan = [item for item in leftovers_of(state) if name in item]
        assert any(i.startswith("cgroup") for i in orphan) and any(
            i.startswith("bundle") for i in orphan
        ), orphan
        worker = live.events("service.started")[0]["pid"]
        os.kill(worker, signal.SIGKILL)  # its replacement's start removes what the dead left
        wait_for(lambda: len(live.events("service.started")) == 3, "the replacement worker", 120)
        wait_for(
            lambda: not [item for item in leftovers_of(state) if name in item],
            "the orphaned slot removed",
            30,
        )
        assert [e["sandbox"] for e in live.events("sandbox.orphan_reaped")] == [name]
