"""The guide's request metrics: answers by route and status, and the time of each traced step.

`RequestMetrics` counts every answered request by its route template (never the raw path) and
status, and times it; `StepMetrics` is a span processor that times each of the service's own
steps (the spans `sandgate.tracing` names) into `sandgate_step_seconds{step}`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandgate.metrics import Metrics

__all__ = ["RequestMetrics", "StepMetrics", "is_step"]

_STEPS = frozenset(
    {
        "auth",
        "ratelimit",
        "policy.resolve",
        "sandbox.queue_wait",
        "sandbox.run",
        "budget.charge",
        "audit.commit",
    }
)


def is_step(name: str) -> bool:
    """True for the spans of the service's own steps (a bounded set of names)."""
    return name in _STEPS or name.startswith(("screen.", "detector."))


class StepMetrics(SpanProcessor):
    """Observes the duration of every step span into the service's step histogram."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_end(self, span: ReadableSpan) -> None:
        if span.start_time is None or span.end_time is None or not is_step(span.name):
            return
        seconds = (span.end_time - span.start_time) / 1e9
        self.metrics.step_seconds.labels(span.name).observe(seconds)


class RequestMetrics:
    """ASGI middleware: `sandgate_requests_total{route,status}` and `sandgate_request_seconds`.

    `metrics` returns the service's metrics, or None until the service has started."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            metrics = self.metrics()
            if metrics is not None:
                route = getattr(scope.get("route"), "path", None) or "(no route)"
                metrics.requests.labels(route, str(status)).inc()
                metrics.request_seconds.labels(route).observe(time.perf_counter() - started)
