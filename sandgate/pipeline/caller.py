"""Who is asking: the authenticated key, the request's id and peer, and the audit trail's flag."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from sandgate.audit.auditor import Auditor
from sandgate.audit.base import AuditEvent
from sandgate.audit.trail import AUDITED
from sandgate.keys import ApiKey

__all__ = ["Caller"]


@dataclass(frozen=True)
class Caller:
    """The caller of one request. `state` is the request's ASGI state: recording through
    `record` tells the audit trail that this request has its record."""

    key: ApiKey
    request_id: str
    client: str | None
    state: MutableMapping[str, Any]

    async def record(self, auditor: Auditor, event: AuditEvent) -> None:
        """Commit the request's one audit record (AuditUnavailable if it cannot be written)."""
        await auditor.record(event)
        self.recorded()

    def recorded(self) -> None:
        """Tell the audit trail that the request's record is committed (written by a pipeline
        step, here or on the worker that ran it)."""
        self.state[AUDITED] = True
