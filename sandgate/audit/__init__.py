"""The tamper-evident, append-only audit log (issue 4): records, chain, stores, export, CLI."""

from __future__ import annotations

from sandgate.audit.base import (
    Action,
    AuditCorrupt,
    AuditError,
    AuditEvent,
    AuditRecord,
    AuditRejected,
    AuditStore,
    AuditUnavailable,
    Checkpoint,
    Head,
    PruneResult,
    RecordFilter,
    VerifyReport,
)
from sandgate.audit.dsn import default_dsn, hmac_key_from_env, open_store

__all__ = [
    "Action",
    "AuditCorrupt",
    "AuditError",
    "AuditEvent",
    "AuditRecord",
    "AuditRejected",
    "AuditStore",
    "AuditUnavailable",
    "Checkpoint",
    "Head",
    "PruneResult",
    "RecordFilter",
    "VerifyReport",
    "default_dsn",
    "hmac_key_from_env",
    "open_store",
]
