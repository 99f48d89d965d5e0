"""Redis being away: a worker's writes are retried (tenacity, exponential backoff up to 2 s)
until Redis answers, since dropping them would lose what ran; new work meets a 503
(`engine`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from sandgate.dispatch.base import QueueUnavailable

__all__ = ["REDIS_DOWN", "engine", "until_redis_answers"]

log = structlog.get_logger(__name__)
T = TypeVar("T")
# Redis away (refused, reset, timed out, still loading its data), not a command it refused.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


@contextmanager
def engine() -> Iterator[None]:
    """Redis being away, as the dispatcher's QueueUnavailable (503: nothing was done)."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise QueueUnavailable(f"the queue (Redis) is unavailable: {type(exc).__name__}") from None


def _waiting(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning("redis.unavailable", attempt=state.attempt_number, error=type(error).__name__)


async def until_redis_answers(write: Callable[[], Awaitable[T]]) -> T:
    """`write`, retried while Redis is away; only cancellation stops it."""
    try:
        return await write()  # the usual case, without building a retrier each time
    except REDIS_DOWN as exc:
        log.warning("redis.unavailable", attempt=1, error=type(exc).__name__)
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(REDIS_DOWN),
        wait=wait_exponential(multiplier=0.05, max=2),
        before_sleep=_waiting,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await write()
    raise AssertionError("unreachable: retried until it answered")
