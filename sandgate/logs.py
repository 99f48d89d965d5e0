"""JSON logs with structlog, and the middleware that gives every request an id.

The request id comes from `X-Request-ID` when it is a sane token, else it is generated; it is
bound to every log line of the request and echoed in the response header. Each request ends
with one `request` line (method, route template, status, duration) in place of uvicorn's access log,
and every line names the worker process (`pid`).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandgate.tracing import add_trace_ids

__all__ = ["EXTRA_HEADERS", "RequestIdMiddleware", "configure_logging", "request_id_var"]

_TOKEN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
request_id_var = "request_id"
EXTRA_HEADERS = "response_headers"  # the request state's key for headers its answer must carry
log = structlog.get_logger("sandgate.request")


def _add_pid(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    event["pid"] = os.getpid()
    return event


def configure_logging(level: str = "info") -> None:
    """Route structlog and the standard library's loggers to one JSON stream on stderr."""
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_pid,
        add_trace_ids,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # uvicorn's access log would repeat each request without its id; ours carries it.
    logging.getLogger("uvicorn.access").disabled = True


class RequestIdMiddleware:
    """Binds a request id to the logging context, echoes it as `X-Request-ID` (with any headers
    a step left in the request's state under `EXTRA_HEADERS`), logs the end, and hands route,
    status and duration to `on_end` (the request metrics)."""

    def __init__(
        self, app: ASGIApp, on_end: Callable[[str, int, float], None] | None = None
    ) -> None:
        self.app = app
        self.on_end = on_end

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _TOKEN.match(sent) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state[request_id_var] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _value in headers}
                extra: dict[str, str] = state.get(EXTRA_HEADERS) or {}
                headers += [
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in extra.items()
                    if name.lower().encode("latin-1") not in present
                ]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # The route's template, never the raw path: a caller may put anything in a URL.
            route = getattr(scope.get("route"), "path", None) or "(no route)"
            seconds = time.perf_counter() - started
            log.info(
                "request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 2),
            )
            if self.on_end is not None:
                self.on_end(route, status, seconds)
