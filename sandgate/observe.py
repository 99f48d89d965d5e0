"""The guide's request metrics: answers by route and status, and the time of each traced step.

`count_request` counts every answered request by its route template (never the raw path) and
status, and times it (the request-id middleware calls it as each request ends); `StepMetrics`
is a span processor that times each of the service's own steps (the spans `sandgate.tracing`
names) into `sandgate_step_seconds{step}`.
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from sandgate.metrics import Metrics

__all__ = ["StepMetrics", "count_request", "is_step"]

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


def count_request(metrics: Metrics | None, route: str, status: int, seconds: float) -> None:
    """One answered request in `sandgate_requests_total` and `sandgate_request_seconds`."""
    if metrics is not None:
        metrics.requests.labels(route, str(status)).inc()
        metrics.request_seconds.labels(route).observe(seconds)
