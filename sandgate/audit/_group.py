"""Group commit: concurrent appends in one process share one transaction.

The chain serialises writers, so each commit (an fsync) is paid one after the other. Threads
that arrive while a commit is running queue; when it ends, the first of them commits the
whole queue at once (the others wait). Every caller still returns only after the transaction
holding its own record committed, and gets its own record back, so durability is unchanged.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence

from sandgate.audit.base import AuditError, AuditEvent, AuditRecord

__all__ = ["GroupCommit"]


class _Ticket:
    __slots__ = ("done", "error", "event", "record")

    def __init__(self, event: AuditEvent) -> None:
        self.event = event
        self.record: AuditRecord | None = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommit:
    """Runs `commit` on batches of queued events; `submit` blocks until its event is durable."""

    def __init__(
        self, commit: Callable[[Sequence[AuditEvent]], list[AuditRecord]], max_batch: int = 256
    ) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: list[_Ticket] = []
        self._busy = False

    def submit(self, event: AuditEvent) -> AuditRecord:
        """Append one event, sharing a transaction with whoever is waiting at the same time."""
        ticket = _Ticket(event)
        with self._cond:
            self._queue.append(ticket)
            while self._busy and not ticket.done:
                self._cond.wait()
            if not ticket.done:
                self._busy = True
                batch, self._queue = self._queue, []
        if not ticket.done:
            self._lead(batch)
        return self._outcome(ticket)

    def _lead(self, batch: list[_Ticket]) -> None:
        try:
            for start in range(0, len(batch), self._max_batch):
                chunk = batch[start : start + self._max_batch]
                try:
                    records = self._commit([t.event for t in chunk])
                except BaseException as exc:  # every caller in the chunk must hear of it
                    for t in chunk:
                        t.error = exc
                else:
                    for t, record in zip(chunk, records, strict=True):
                        t.record = record
        finally:
            with self._cond:
                for t in batch:
                    t.done = True
                self._busy = False
                self._cond.notify_all()

    @staticmethod
    def _outcome(ticket: _Ticket) -> AuditRecord:
        if ticket.error is not None:
            # One exception object raised in several threads would share a traceback.
            try:
                clone = copy.copy(ticket.error)
            except Exception:
                clone = AuditError(str(ticket.error))
            raise clone from ticket.error
        assert ticket.record is not None
        return ticket.record
