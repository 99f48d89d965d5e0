"""Unit tests of the retry and polling policies (tenacity): what is retried, and how long the
client waits. The real 429 and 503 are in test_retries.py; here the clock is recorded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from sandgate_client import AsyncSandgate, AuthError, ExecutionFailed, RateLimited, StillRunning
from sandgate_client._base import final_result, poll_options, retry_options
from sandgate_client.errors import APIError, error_from_response
from sandgate_client.models import ExecutionState
from tenacity import AsyncRetrying, Retrying


def _refusal(status: int, type_: str, retry_after: str | None = None) -> APIError:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"error": {"type": type_, "message": type_}, "request_id": "r"}
    request = httpx.Request("POST", "http://127.0.0.1/execute")
    return error_from_response(httpx.Response(status, json=body, headers=headers, request=request))


def _failing(*errors: APIError) -> Iterator[APIError | None]:
    yield from errors
    yield None


def _attempts(retrying: Retrying, script: Iterator[APIError | None]) -> int:
    count = 0

    def call() -> str:
        nonlocal count
        count += 1
        error = next(script)
        if error is not None:
            raise error
        return "done"

    assert retrying(call) == "done"
    return count


def test_when_429_says_retry_after_then_the_wait_is_at_least_that() -> None:
    slept: list[float] = []
    retrying = Retrying(**retry_options(3), sleep=slept.append)
    script = _failing(_refusal(429, "busy", "2"), _refusal(503, "unavailable"))
    assert _attempts(retrying, script) == 3
    assert slept[0] >= 2.0
    assert 0.0 < slept[1] <= 8.5  # no Retry-After: exponential backoff with jitter


def test_when_backoff_grows_then_waits_grow_with_each_attempt() -> None:
    slept: list[float] = []
    retrying = Retrying(**retry_options(4, max_wait=60), sleep=slept.append)
    script = _failing(*[_refusal(503, "unavailable")] * 4)
    assert _attempts(retrying, script) == 5
    assert slept == sorted(slept) and slept[-1] > slept[0]


def test_when_retries_run_out_then_the_last_refusal_is_raised() -> None:
    retrying = Retrying(**retry_options(2), sleep=lambda _s: None)
    with pytest.raises(RateLimited):
        _attempts(retrying, _failing(*[_refusal(429, "busy", "1")] * 3))


@pytest.mark.parametrize(
    "error",
    [_refusal(401, "unauthorized"), _refusal(429, "quota_exceeded", "86400")],
    ids=["auth", "quota-in-a-day"],
)
def test_when_a_refusal_cannot_pass_soon_then_it_is_raised_at_once(error: APIError) -> None:
    slept: list[float] = []
    retrying = Retrying(**retry_options(5), sleep=slept.append)
    with pytest.raises(type(error)):
        _attempts(retrying, _failing(error))
    assert slept == []


def test_when_the_async_client_is_refused_then_it_retries_through_the_same_policy() -> None:
    answers = iter(
        [
            httpx.Response(
                429,
                json={"error": {"type": "busy", "message": "busy"}},
                headers={"Retry-After": "0"},
            ),
            httpx.Response(401, json={"error": {"type": "unauthorized", "message": "no"}}),
        ]
    )
    transport = httpx.MockTransport(lambda _request: next(answers))

    async def call() -> None:
        async with httpx.AsyncClient(transport=transport) as http:
            await AsyncSandgate("http://127.0.0.1:1", "k", http_client=http).screen("x")

    with pytest.raises(AuthError):
        asyncio.run(call())


def test_when_polling_an_execution_then_it_returns_once_done() -> None:
    states = iter(["queued", "running", "done"])

    def get() -> ExecutionState:
        status = next(states)
        response = {"execution_id": "e", "status": "ok"} if status == "done" else None
        return ExecutionState(execution_id="e", status=status, response=response)

    slept: list[float] = []
    state = Retrying(**poll_options(60), sleep=slept.append)(get)
    assert final_result(state).status == "ok" and len(slept) == 2


def test_when_an_execution_stays_queued_then_still_running_after_the_timeout() -> None:
    queued = ExecutionState(execution_id="e", status="queued")
    with pytest.raises(StillRunning, match="still queued"):
        asyncio.run(AsyncRetrying(**poll_options(0.3))(_queued, queued))


async def _queued(state: ExecutionState) -> ExecutionState:
    return state


def test_when_an_execution_failed_then_execution_failed_says_why() -> None:
    failed = ExecutionState.model_validate(
        {
            "execution_id": "e",
            "status": "failed",
            "response": {"execution_id": "e", "status": "sandbox_error", "detail": "runsc died"},
        }
    )
    with pytest.raises(ExecutionFailed, match="runsc died"):
        final_result(failed)
