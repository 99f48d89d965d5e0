"""The service's one door to the audit log: write, page, verify and export, holding the HMAC key.

`record` commits an event before the caller answers; whatever the event holds, it is first
made storable (`sandgate.audit.fit`): what happened is always recorded, cut or scrubbed where
needed, never refused. Only a store that cannot be written fails, with `AuditUnavailable`,
which the error table answers as 503. `ensure_writable` lets a caller check that before it
acts. Content kept follows the policy's `audit.content`:
    none       no excerpts, metadata only
    redacted   excerpts after screening's redaction (the default)
    full       the text as sent when screening found nothing in it, else the redacted text
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, Protocol, TypeVar

import anyio
import structlog
from pydantic import JsonValue, TypeAdapter

from sandgate.audit.base import (
    AuditError,
    AuditEvent,
    AuditRecord,
    AuditStore,
    AuditUnavailable,
    RecordFilter,
    VerifyReport,
)
from sandgate.audit.export import Format, export_lines
from sandgate.audit.fit import cut, fit
from sandgate.keys import ApiKey
from sandgate.tracing import span

__all__ = ["Auditor", "excerpt"]

log = structlog.get_logger(__name__)
_PLAIN = TypeAdapter(dict[str, Any])
Content = Literal["none", "redacted", "full"]
T = TypeVar("T")


class NamedPolicy(Protocol):
    """What a record names of a policy: a resolved policy, or its reference in a job."""

    @property
    def name(self) -> str: ...

    @property
    def hash(self) -> str: ...


def excerpt(text: str, redacted: str, *, clean: bool, content: Content) -> str | None:
    """What a record keeps of one text: nothing, the redacted text, or (`full`, and screening
    found nothing) the text as sent."""
    if content == "none":
        return None
    shown = text if content == "full" and clean else redacted
    return cut(shown) if shown else None


class Auditor:
    """Writes the service's audit events and reads them back for auditors; fails closed.

    `store=None` is auditing off (`SANDGATE_AUDIT_DSN=off`, for benchmarks): nothing is
    written, reads answer 503, and /ready never passes."""

    def __init__(self, store: AuditStore | None, hmac_key: bytes) -> None:
        self._store = store
        self.hmac_key = hmac_key

    @property
    def enabled(self) -> bool:
        """False only when auditing was turned off."""
        return self._store is not None

    @property
    def store(self) -> AuditStore:
        """The store; AuditUnavailable when auditing is off."""
        if self._store is None:
            raise AuditUnavailable("auditing is off on this instance (SANDGATE_AUDIT_DSN=off)")
        return self._store

    @staticmethod
    def event(
        action: str,
        *,
        key: ApiKey | None,
        request_id: str | None,
        client: str | None,
        policy: NamedPolicy | None = None,
        verdict: str | None = None,
        status: str | None = None,
        content: Mapping[str, str | None] | None = None,
        details: Mapping[str, Any] | None = None,
        tenant: str | None = None,
    ) -> AuditEvent:
        """An event naming who acted (key id, name, tenant; never the key) and under which
        policy, fitted to the store's rules (see `sandgate.audit.fit`). `tenant` names whose
        the action was when no key acted (a webhook delivered for one)."""
        raw = AuditEvent.model_construct(
            action=action,
            verdict=verdict,
            status=status,
            tenant=key.tenant if key else tenant,
            key_id=key.id if key else None,
            key_name=key.name if key else None,
            policy_name=policy.name if policy else None,
            policy_hash=policy.hash if policy else None,
            request_id=request_id,
            client=client,
            content={k: v for k, v in (content or {}).items() if v},
            details=_json(details or {}),
        )
        return fit(raw)

    async def record(self, event: AuditEvent) -> AuditRecord | None:
        """Append and commit `event`; AuditUnavailable if the store cannot be written."""
        if self._store is None:
            return None
        try:
            with span("audit.commit", action=event.action):
                return await anyio.to_thread.run_sync(self._store.append, event)
        except AuditError as exc:
            log.error("audit.write_failed", action=event.action, error=type(exc).__name__)
            raise AuditUnavailable(
                "the audit log cannot be written; nothing was answered"
            ) from None

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
            raise AuditUnavailable("the audit log is unavailable; nothing was done") from None

    async def head_seq(self) -> int:
        """How many records the log holds (the head's seq)."""
        return (await self._read(lambda store: store.head())).seq

    async def page(
        self, where: RecordFilter, *, limit: int, before_seq: int | None
    ) -> list[AuditRecord]:
        """Records matching `where`, newest first, `limit` at a time."""
        return await self._read(lambda s: s.page(where, limit=limit, before_seq=before_seq))

    async def verify(self) -> VerifyReport:
        """Walk the whole chain and its signed checkpoints."""
        return await self._read(lambda store: store.verify(self.hmac_key))

    def export(self, fmt: Format, where: RecordFilter) -> Iterator[str]:
        """Matching records as lines of `fmt`, streamed from a cursor."""
        return export_lines(self.store, fmt, where)

    async def _read(self, read: Callable[[AuditStore], T]) -> T:
        store = self.store
        try:
            return await anyio.to_thread.run_sync(read, store)
        except AuditError:
            raise AuditUnavailable("the audit log is unavailable") from None


def _json(value: Mapping[str, Any]) -> dict[str, JsonValue]:
    """Plain JSON data (pydantic models dumped in JSON mode)."""
    dumped: dict[str, JsonValue] = _PLAIN.dump_python(dict(value), mode="json")
    return dumped
