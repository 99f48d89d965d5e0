"""Several workers on one state directory: a worker that starts never reaps a sibling's sandbox."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandgate.settings import REPO_ROOT
from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import start_server, wait_for

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
