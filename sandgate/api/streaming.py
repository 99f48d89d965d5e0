"""`Accept: application/x-ndjson`: an execution answered as a stream of events.

The request is admitted first (every refusal is still a plain 4xx); then the answer starts and
the execution runs in a task of its own, so a client that goes away does not stop it half-way:
it runs to its end and its audit record is written whatever happens (`AUDIT_DEFERRED` tells the
audit trail the pipeline will). Events: `stdout`/`stderr` as released by screening, `result`
per rich result, then `end` with the usual answer, or `error` (a refusal after the start, such
as `busy`, or `output_blocked` when screening blocked the output: the rest was withheld).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from fastapi import Request

from sandgate.api.responses import NDJSONStream
from sandgate.audit.auditor import Auditor
from sandgate.audit.base import AuditError
from sandgate.audit.errors import AuditUnavailable
from sandgate.audit.trail import AUDIT_DEFERRED, AUDITED, trail_event
from sandgate.errors import ERROR, SandgateError
from sandgate.models import ExecuteResponse
from sandgate.pipeline.stream import Events

__all__ = ["STREAM", "streamed", "wants_stream"]

log = structlog.get_logger(__name__)
STREAM = "application/x-ndjson"
STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": f"JSON, or with `Accept: {STREAM}` one event a line: `stdout`/`stderr`, "
        "`result`, then `end` (the usual answer) or `error`.",
        "content": {STREAM: {"schema": {"type": "string"}}},
    }
}
_running: set[asyncio.Task[None]] = set()


def wants_stream(request: Request) -> bool:
    """True when the caller asked for the event stream."""
    return STREAM in request.headers.get("accept", "")


def streamed(
    request: Request,
    auditor: Auditor,
    events: Events,
    conclude: Callable[[], Awaitable[ExecuteResponse]],
) -> NDJSONStream:
    """Start `conclude()` in its own task and answer with its events."""
    request.scope["state"][AUDIT_DEFERRED] = True
    task = asyncio.create_task(_drive(request.scope, auditor, events, conclude))
    _running.add(task)
    task.add_done_callback(_running.discard)

    async def lines() -> AsyncIterator[bytes]:
        async for line in events.lines():
            yield line

    return NDJSONStream(lines())


async def _drive(
    scope: Any,
    auditor: Auditor,
    events: Events,
    conclude: Callable[[], Awaitable[ExecuteResponse]],
) -> None:
    try:
        response = await conclude()
        for result in response.results:
            await events.send({"type": "result", **result.model_dump(mode="json")})
        answer = response.model_dump(mode="json")
        if events.blocked:
            message = "screening blocked the output; the rest of it was withheld"
            error = {"type": "output_blocked", "message": message}
            await events.send({"type": "error", "error": error, "response": answer})
        else:
            await events.send({"type": "end", "response": answer})
    except (SandgateError, AuditUnavailable) as exc:
        kind, message, status = _error_of(exc)
        await _record_refusal(scope, auditor, kind, message, status)
        await events.send({"type": "error", "error": {"type": kind, "message": message}})
    except Exception as exc:
        log.error("stream.crashed", error=type(exc).__name__, exc_info=exc)
        await _record_refusal(scope, auditor, "internal_error", "internal error", 500)
        error = {"type": "internal_error", "message": "internal error"}
        await events.send({"type": "error", "error": error})
    finally:
        await events.close()


def _error_of(exc: Exception) -> tuple[str, str, int]:
    if isinstance(exc, SandgateError):
        return exc.type, exc.message, exc.status_code
    return "unavailable", str(exc), 503


async def _record_refusal(
    scope: Any, auditor: Auditor, kind: str, message: str, status: int
) -> None:
    """The one record of a request refused after its stream started (nothing ran)."""
    state = scope["state"]
    if state.get(AUDITED):
        return
    state[ERROR] = (kind, message)
    try:
        await auditor.record(trail_event(scope, status))
    except AuditError:
        log.error("audit.stream_refusal_unrecorded", status=status)
