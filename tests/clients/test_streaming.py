"""Streaming delivers output while the program still runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sandgate_client import AsyncSandgate, EndEvent, OutputEvent, Sandgate

from tests.helpers import LiveServer

pytestmark = pytest.mark.sandbox
PAUSE_S = 2.0
CODE = f"import time\nprint('first', flush=True)\ntime.sleep({PAUSE_S})\nprint('second')"


def test_when_a_program_pauses_then_its_first_line_arrives_before_it_ends(
    sandgate: Sandgate,
) -> None:
    arrivals = [(event, time.monotonic()) for event in sandgate.stream(CODE)]
    first, first_at = arrivals[0]
    end, end_at = arrivals[-1]
    assert isinstance(first, OutputEvent) and first.text == "first\n"
    assert isinstance(end, EndEvent) and end.response.stdout == "first\nsecond\n"
    assert end_at - first_at >= PAUSE_S * 0.75


def test_when_a_callback_is_given_then_it_is_called_before_the_program_ends(
    server: LiveServer,
) -> None:
    async def scenario() -> float:
        called: list[float] = []
        async with AsyncSandgate(server.url, server.key) as client:
            await client.execute(CODE, on_stdout=lambda _text: called.append(time.monotonic()))
        return time.monotonic() - called[0]

    assert asyncio.run(scenario()) >= PAUSE_S * 0.75


def test_when_a_session_streams_then_its_events_come_as_produced(
    sandgate: Sandgate, server: LiveServer
) -> None:
    with sandgate.sessions.create() as session:
        arrivals = [(event, time.monotonic()) for event in session.stream(CODE)]
    assert arrivals[-1][1] - arrivals[0][1] >= PAUSE_S * 0.75
    end = arrivals[-1][0]
    assert isinstance(end, EndEvent) and end.response.execution_count == 1


def test_when_the_cli_runs_then_the_terminal_sees_the_first_line_before_the_end(
    server: LiveServer,
) -> None:
    env = {"SANDGATE_URL": server.url, "SANDGATE_API_KEY": server.key, "PATH": "/usr/bin:/bin"}
    cli = str(Path(sys.executable).parent / "sandgate-client")
    with subprocess.Popen(
        [cli, "run", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True
    ) as process:
        assert process.stdin and process.stdout
        process.stdin.write(CODE)
        process.stdin.close()
        assert process.stdout.readline() == "first\n"
        first_at = time.monotonic()
        assert process.stdout.readline() == "second\n"
        process.wait(timeout=60)
    assert time.monotonic() - first_at >= PAUSE_S * 0.75 and process.returncode == 0
