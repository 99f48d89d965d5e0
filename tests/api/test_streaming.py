"""Streaming over real HTTP from real gVisor: the first chunk arrives while the program still
runs, and a secret printed in two halves with a pause between is redacted in the stream."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sandgate.settings import REPO_ROOT
from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import LiveServer, start_server

pytestmark = pytest.mark.sandbox

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
REDACTING = """extends: default
screening:
  output:
    detector_actions: {pii: redact, secrets: redact}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, images: Any) -> Iterator[LiveServer]:
    """A service whose `streamer` key's policy redacts secrets in output instead of blocking."""
    policies = tmp_path_factory.mktemp("policies")
    shutil.copytree(REPO_ROOT / "policies", policies, dirs_exist_ok=True)
    (policies / "streaming.yaml").write_text(REDACTING)
    bindings = policies / "bindings.yaml"
    bindings.write_text(bindings.read_text().replace("keys: {}", "keys: {streamer: streaming}"))
    state = make_state_dir(tmp_path_factory.mktemp("streaming-state"))
    env = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_POLICY_DIR": str(policies)}
    with start_server(state, env) as server:
        yield server


def _events(
    live: LiveServer, code: str, key: str | None = None
) -> list[tuple[float, dict[str, Any]]]:
    """Each event with the time it arrived."""
    received = []
    with (
        live.client(key=key) as client,
        client.stream(
            "POST", "/execute", json={"code": code}, headers={"Accept": "application/x-ndjson"}
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line:
                received.append((time.monotonic(), json.loads(line)))
    return received


def test_when_a_program_prints_then_sleeps_then_its_first_line_arrives_before_it_ends(
    live: LiveServer,
) -> None:
    code = "import time\nprint('first')\ntime.sleep(2)\nprint('second')"
    events = _events(live, code)
    kinds = [e["type"] for _, e in events]
    assert kinds == ["stdout", "stdout", "end"], kinds
    (first_at, first), (_, second), (end_at, end) = events
    assert (first["text"], second["text"]) == ("first\n", "second\n")
    assert end_at - first_at >= 1.5  # the first line left while the program slept
    assert end["response"]["status"] == "ok" and end["response"]["stdout"] == "first\nsecond\n"


def test_when_a_secret_is_printed_in_two_halves_with_a_pause_then_the_stream_redacts_it(
    live: LiveServer,
) -> None:
    key = live.new_key("streamer")
    code = (
        "import sys, time\n"
        f"sys.stdout.write('key={AWS_KEY[:10]}'); sys.stdout.flush()\n"
        "time.sleep(1)\n"
        f"print('{AWS_KEY[10:]} done')"
    )
    events = _events(live, code, key=key)
    streamed = "".join(e["text"] for _, e in events if e["type"] == "stdout")
    assert streamed == "key=<AWS_ACCESS_KEY> done\n"
    assert AWS_KEY[:10] not in json.dumps([e for _, e in events])
    assert events[-1][1]["response"]["stdout"] == "key=<AWS_ACCESS_KEY> done\n"
