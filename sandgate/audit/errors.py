"""The audit package's exceptions.

    AuditError              base of everything this package raises
    ├── AuditUnavailable    the database cannot be reached, opened or written: answer 503
    ├── AuditRejected       the event itself is refused (looks like a secret, too large)
    └── AuditCorrupt        a stored row cannot even be read back as a record (tampering)

Database driver errors (sqlite3, psycopg) are translated where they enter, into
`AuditUnavailable`, with the driver's error name but never the DSN or any record content.
"""

from __future__ import annotations

__all__ = ["AuditCorrupt", "AuditError", "AuditRejected", "AuditUnavailable"]


class AuditError(Exception):
    """Base of the audit package's errors."""


class AuditUnavailable(AuditError):
    """The audit database cannot be reached, opened or written; the caller must fail closed."""


class AuditRejected(AuditError, ValueError):
    """The event was refused before anything was written (secret-shaped content, too large)."""


class AuditCorrupt(AuditError):
    """A stored row could not be read back as a record: the database was edited by hand."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"record seq {seq}: {reason}")
        self.seq = seq
        self.reason = reason
