"""The service's side of the audit log: one event per decision, committed before the answer.

`Auditor.record` runs the store's synchronous append in a worker thread and turns any store
failure into `Unavailable` (503): a request is answered only once its record is committed, and
nothing is answered unaudited. Content kept follows the policy's `audit.content`:
    none       no excerpts, metadata only
    redacted   excerpts after screening's redaction (the default)
    full       the text as sent when screening found nothing in it, else the redacted text
Every excerpt is capped and scrubbed of anything shaped like an API key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import structlog
from fastapi import Request
from pydantic import JsonValue, TypeAdapter

from guards import ScreenResult
from sandgate.audit.base import AuditError, AuditEvent, AuditRecord, AuditStore
from sandgate.audit.guard import EventGuard
from sandgate.errors import PolicyRefused, SandgateError, Unavailable
from sandgate.keys import ApiKey
from sandgate.policy.loader import ResolvedPolicy

__all__ = ["EXCERPT_CHARS", "Auditor", "audit_refusal", "excerpts"]

log = structlog.get_logger(__name__)
EXCERPT_CHARS = 4096
_guard = EventGuard()


def excerpts(
    texts: Mapping[str, str],
    results: Mapping[str, ScreenResult],
    content: str,
) -> dict[str, str]:
    """The excerpts a record keeps of `texts`, per the policy's `audit.content`."""
    if content == "none":
        return {}
    kept = {}
    for name, text in texts.items():
        result = results.get(name)
        if result is None:
            shown = text  # never screened (empty), nothing to hide
        elif content == "full" and not result.findings:
            shown = text
        else:
            shown = result.redacted_text
        if shown:
            kept[name] = _guard.scrub(shown[:EXCERPT_CHARS])
    return kept


class Auditor:
    """Writes audit events for the service; fails closed. `store=None` is auditing off
    (`SANDGATE_AUDIT_DSN=off`, for benchmarks): nothing is written and /ready never passes."""

    def __init__(self, store: AuditStore | None) -> None:
        self._store = store

    @property
    def enabled(self) -> bool:
        """False only when auditing was turned off."""
        return self._store is not None

    @property
    def store(self) -> AuditStore:
        """The store; Unavailable when auditing is off."""
        if self._store is None:
            raise Unavailable("auditing is off on this instance (SANDGATE_AUDIT_DSN=off)")
        return self._store

    @staticmethod
    def event(
        action: str,
        *,
        key: ApiKey | None,
        request_id: str | None,
        client: str | None,
        policy: ResolvedPolicy | None = None,
        verdict: str | None = None,
        status: str | None = None,
        content: dict[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """An event with the caller's identity (key id and name, never the key)."""
        return AuditEvent(
            action=action,
            verdict=verdict,
            status=status,
            tenant=key.tenant if key else None,
            key_id=key.id if key else None,
            key_name=key.name if key else None,
            policy_name=policy.name if policy else None,
            policy_hash=policy.hash if policy else None,
            request_id=request_id,
            client=client,
            content=content or {},
            details=_json(details or {}),
        )

    async def record(self, event: AuditEvent) -> AuditRecord | None:
        """Append and commit `event`; raises Unavailable (503) if that cannot be done."""
        if self._store is None:
            return None
        try:
            return await anyio.to_thread.run_sync(self._store.append, event)
        except AuditError as exc:
            log.error("audit.write_failed", action=event.action, error=type(exc).__name__)
            raise Unavailable("the audit log cannot be written; nothing was answered") from None

    def record_background(self, event: AuditEvent) -> None:
        """Append from a background thread (policy reloads): failures are logged, not raised."""
        if self._store is None:
            return
        try:
            self._store.append(event)
        except AuditError as exc:
            log.error("audit.write_failed", action=event.action, error=type(exc).__name__)

    async def ensure_writable(self) -> None:
        """Fail before acting (running a sandbox) when the store is already down."""
        if self._store is None:
            return
        try:
            await anyio.to_thread.run_sync(self._store.head)
        except AuditError as exc:
            log.error("audit.unavailable", error=type(exc).__name__)
            raise Unavailable("the audit log is unavailable; nothing was done") from None


_PLAIN = TypeAdapter(dict[str, Any])


REFUSAL_ACTIONS = {401: "auth.denied", 403: "forbidden", 429: "rate_limited"}


async def audit_refusal(request: Request, exc: SandgateError) -> None:
    """Audit a refused request (401, 403 incl. policy refusals, 429); Unavailable if that fails."""
    services = getattr(request.app.state, "services", None)
    if services is None:
        return
    action = (
        "policy.refused"
        if isinstance(exc, PolicyRefused)
        else REFUSAL_ACTIONS.get(exc.status_code, "refused")
    )
    key = getattr(request.state, "key", None)
    await services.auditor.record(
        Auditor.event(
            action,
            key=key,
            request_id=request.scope.get("state", {}).get("request_id"),
            client=request.client.host if request.client else None,
            verdict="deny",
            status=str(exc.status_code),
            details={"method": request.method, "path": request.url.path, "reason": exc.message},
        )
    )


def _json(value: Mapping[str, Any]) -> dict[str, JsonValue]:
    """Plain JSON data (pydantic models dumped in JSON mode)."""
    dumped: dict[str, JsonValue] = _PLAIN.dump_python(dict(value), mode="json")
    return dumped
