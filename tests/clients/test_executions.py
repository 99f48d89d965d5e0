"""Asynchronous executions: submitted, polled and waited for."""

from __future__ import annotations

import asyncio

import pytest
from sandgate_client import AsyncSandgate, NotFound, Sandgate

from tests.helpers import LiveServer

pytestmark = pytest.mark.sandbox


def test_when_code_is_submitted_then_it_is_queued_and_its_answer_comes_later(
    sandgate: Sandgate,
) -> None:
    queued = sandgate.executions.submit("print('later')")
    assert queued.status == "queued" and queued.execution_id
    result = sandgate.executions.wait(queued.execution_id, timeout=120)
    assert result.stdout == "later\n"
    assert sandgate.executions.get(queued.execution_id).status == "done"


def test_when_the_async_client_submits_then_it_waits_for_the_answer(server: LiveServer) -> None:
    async def scenario() -> str:
        async with AsyncSandgate(server.url, server.key) as client:
            queued = await client.executions.submit("print('async later')")
            return (await client.executions.wait(queued.execution_id, timeout=120)).stdout

    assert asyncio.run(scenario()) == "async later\n"


def test_when_the_id_is_unknown_then_not_found(sandgate: Sandgate) -> None:
    with pytest.raises(NotFound):
        sandgate.executions.get("no-such-execution")


def test_when_dead_letters_are_listed_then_the_answer_is_a_list(sandgate: Sandgate) -> None:
    assert isinstance(sandgate.executions.list(status="dead"), list)
