"""The audit trail: every answered request has exactly one record, committed before the answer.

Pipelines (`/execute`, `/screen`, ...) write their own, detailed record and set
`state[AUDITED]` (a streamed answer sets `state[AUDIT_DEFERRED]` as it starts: its pipeline
records when the stream ends, whatever happens). For every other answer (a refusal, a bad
request, a read by an auditor or an operator) this middleware writes one before the answer's
first byte: who asked (the key's id, never the key), the route, the status, and for an error
its type and message, all scrubbed of key-shaped strings. If that record cannot be committed,
the answer becomes a 503: nothing is answered unaudited. Liveness, readiness and the API docs
are not audited.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import structlog
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandgate.audit.auditor import Auditor
from sandgate.audit.base import AuditError, AuditEvent
from sandgate.errors import ERROR

__all__ = ["AUDITED", "AUDIT_DEFERRED", "UNAUDITED_PATHS", "AuditTrail", "trail_event"]

log = structlog.get_logger(__name__)

AUDITED = "audited"  # set in the request's state once its record is committed
AUDIT_DEFERRED = "audit_deferred"  # a streamed answer: its pipeline records when it ends
UNAUDITED_PATHS = frozenset(
    {"/health", "/ready", "/docs", "/docs/oauth2-redirect", "/openapi.json"}
)
_ACTION = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")


def action_for(status: int, route_name: str | None, error_type: str | None) -> str:
    """The record's action: the route's own name for a success, else the kind of refusal."""
    if status < 400:
        return route_name if route_name and _ACTION.match(route_name) else "request"
    if status == 401:
        return "auth.denied"
    if error_type == "policy_refused":
        return "policy.refused"
    if status == 403:
        return "forbidden"
    if status == 429:
        return "rate_limited"
    return "request.invalid" if status < 500 else "request.failed"


def trail_event(scope: Scope, status: int) -> AuditEvent:
    """The record of one answered request: who, which route, what it was answered."""
    state = scope["state"]
    route = scope.get("route")
    error = state.get(ERROR)
    error_type, message = error if error else (None, None)
    client = scope.get("client")
    details: dict[str, Any] = {
        "method": scope["method"],
        "route": getattr(route, "path", None),
        "path": scope["path"][:512],
    }
    if error:
        details |= {"error": error_type, "reason": message}
    verdict = "ok" if status < 400 else "deny" if status < 500 else "error"
    return Auditor.event(
        action_for(status, getattr(route, "name", None), error_type),
        key=state.get("key"),
        request_id=state.get("request_id"),
        client=client[0] if client else None,
        verdict=verdict,
        status=str(status),
        details=details,
    )


class AuditTrail:
    """ASGI middleware that records each answered request its pipeline did not record.

    `auditor` returns the service's auditor, or None until the service has started."""

    def __init__(self, app: ASGIApp, auditor: Callable[[], Auditor | None]) -> None:
        self.app = app
        self.auditor = auditor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNAUDITED_PATHS:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        started = False
        refused = False

        async def audited_send(message: Message) -> None:
            nonlocal started, refused
            if refused:
                return  # the app's own answer was replaced by a 503
            if message["type"] == "http.response.start":
                started = True
                if not await self._record(scope, message["status"]):
                    refused = True
                    await _unavailable(scope, receive, send)
                    return
            await send(message)

        try:
            await self.app(scope, receive, audited_send)
        except Exception:
            if not started:
                await self._record(scope, 500)
            raise

    async def _record(self, scope: Scope, status: int) -> bool:
        """Commit the request's record unless its pipeline did; False if it cannot be."""
        state = scope["state"]
        if state.get(AUDITED) or state.get(AUDIT_DEFERRED):
            return True
        auditor = self.auditor()
        if auditor is None:
            return True
        try:
            await auditor.record(trail_event(scope, status))
        except AuditError as exc:
            log.error("audit.trail_failed", status=status, error=type(exc).__name__)
            return False
        state[AUDITED] = True
        return True


async def _unavailable(scope: Scope, receive: Receive, send: Send) -> None:
    body = {
        "error": {
            "type": "unavailable",
            "message": "the audit log cannot be written; nothing was answered",
        },
        "request_id": scope["state"].get("request_id"),
    }
    await JSONResponse(body, status_code=503)(scope, receive, send)
