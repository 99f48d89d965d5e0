"""OpenTelemetry tracing: a span per step of a request, exported over OTLP/HTTP when configured.

Each request gets a server span from FastAPI's own instrumentation (continuing the caller's
W3C `traceparent` when it sends one, named by the route's template), and inside it: `auth`,
`ratelimit`, `policy.resolve`, `screen.<stage>` with a `detector.<name>` per detector (from
`guards`, through opentelemetry-api), `sandbox.queue_wait` (waiting for a slot),
`sandbox.run`, `budget.charge` and `audit.commit`. With `SANDGATE_OTLP_ENDPOINT` the spans are
batched to `<endpoint>/v1/traces`; without it nothing leaves the process, but spans still carry
ids, and every JSON log line written inside one names its `trace_id` and `span_id`.

The SDK's provider is process-wide (opentelemetry allows one); each running service adds its
exporter to it and takes it off when it stops, so in-process tests stay apart.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, MutableMapping
from typing import Any

from fastapi.telemetry import TelemetryConfig
from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from sandgate import __version__

__all__ = ["FASTAPI_TELEMETRY", "Tracing", "add_trace_ids", "span", "start_span"]

_tracer = trace.get_tracer("sandgate", __version__)
# FastAPI's own instrumentation makes the server span of each request (continuing an incoming
# `traceparent`, named by the route's template) and spans for dependencies, the endpoint and
# serialization. Its metrics are Prometheus' job here, and its logs would carry exception
# messages: both off.
FASTAPI_TELEMETRY: TelemetryConfig = {
    "tracing": True,
    "operation_spans": True,
    "metrics": False,
    "logs": False,
    "auto_configure": False,
}


class _Exports(SpanProcessor):
    """The process-wide provider's one processor: forwards to the running services' exporters."""

    def __init__(self) -> None:
        self.processors: list[SpanProcessor] = []

    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        for processor in self.processors:
            processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self.processors:
            processor.on_end(span)


_EXPORTS = _Exports()


def _install_provider() -> None:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider(resource=Resource.create({"service.name": "sandgate"}))
        provider.add_span_processor(_EXPORTS)
        trace.set_tracer_provider(provider)


class Tracing:
    """One service's exporter on the process-wide provider (none without an endpoint), and
    its `steps` processor (the step histogram) beside it."""

    def __init__(self, endpoint: str | None, steps: SpanProcessor | None = None) -> None:
        _install_provider()
        self._steps = steps
        if steps is not None:
            _EXPORTS.processors.append(steps)
        self._processor: BatchSpanProcessor | None = None
        if endpoint:
            url = endpoint.rstrip("/")
            url = url if url.endswith("/v1/traces") else url + "/v1/traces"
            self._processor = BatchSpanProcessor(
                OTLPSpanExporter(endpoint=url, timeout=5), schedule_delay_millis=1000
            )
            _EXPORTS.processors.append(self._processor)

    @property
    def exporting(self) -> bool:
        """True when spans leave the process."""
        return self._processor is not None

    def flush(self) -> bool:
        """Send what is batched now; True when it all went."""
        return self._processor.force_flush() if self._processor else True

    def close(self) -> None:
        """Flush and take this service's exporter (and step timer) off the provider."""
        if self._steps is not None:
            _EXPORTS.processors.remove(self._steps)
            self._steps = None
        if self._processor is not None:
            _EXPORTS.processors.remove(self._processor)
            self._processor.shutdown()  # type: ignore[no-untyped-call]
            self._processor = None


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A child span of the current one for a step of the request."""
    with _tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def start_span(name: str) -> trace.Span:
    """A child span of the current one that the caller ends (a step that is not a block)."""
    return _tracer.start_span(name)


def add_trace_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor: the current span's trace and span ids on every line."""
    found = trace.get_current_span().get_span_context()
    if found.is_valid:
        event["trace_id"] = format(found.trace_id, "032x")
        event["span_id"] = format(found.span_id, "016x")
    return event
