"""Several workers on one state directory: a worker that starts never reaps a sibling's sandbox."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandgate.settings import REPO_ROOT
from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import LiveServer, start_server

pytestmark = pytest.mark.sandbox

SLEEPER = "import time; time.sleep(30); print('done')"


def _events(live: LiveServer, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in live.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def _wait_for(what: str, found: Any, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := found()):
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.2)
    return value


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
        _wait_for("two workers", lambda: len(_events(live, "service.started")) == 2)
        workers = {e["pid"] for e in _events(live, "service.started")}
        answers: list[httpx.Response] = []

        def execute() -> None:
            with live.client(timeout=120) as client:
                answers.append(client.post("/execute", json={"code": SLEEPER, "timeout_s": 60}))

        request = threading.Thread(target=execute)
        request.start()
        (running,) = _wait_for("the execution start", lambda: _events(live, "execute.start"))
        (sibling,) = workers - {running["pid"]}
        os.kill(sibling, signal.SIGKILL)  # uvicorn starts a new worker in its place
        _wait_for("the replacement worker", lambda: len(_events(live, "service.started")) == 3)
        request.join(120)
    (answer,) = answers
    assert answer.status_code == 200, answer.text
    assert (answer.json()["status"], answer.json()["stdout"]) == ("ok", "done\n"), answer.json()
