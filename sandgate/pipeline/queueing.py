"""What the queue's refusals are answered with: 429 over its cap, 503 when its engine is down."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sandgate.dispatch.base import QueueFull, QueueUnavailable
from sandgate.errors import Busy, Unavailable
from sandgate.settings import Settings

__all__ = ["queue_errors", "retry_after"]


def retry_after(settings: Settings) -> dict[str, str]:
    """The `Retry-After` header of a 429: about one queue wait."""
    return {"Retry-After": str(max(1, round(settings.queue_timeout_s)))}


@contextmanager
def queue_errors(settings: Settings) -> Iterator[None]:
    """Turn the dispatcher's refusals into the service's errors (nothing was queued)."""
    try:
        yield
    except QueueFull as exc:
        message = f"the queue is full: {exc}; retry later"
        raise Busy(message, headers=retry_after(settings)) from None
    except QueueUnavailable as exc:
        raise Unavailable(str(exc)) from None
