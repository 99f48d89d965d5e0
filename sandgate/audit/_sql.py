"""What the SQLite and PostgreSQL stores share: rows, filters, sealing a batch, verifying."""

from __future__ import annotations

import abc
import heapq
import json
import time as monotonic_clock
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, closing
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from sandgate.audit._group import GroupCommit
from sandgate.audit.base import (
    AuditCorrupt,
    AuditError,
    AuditEvent,
    AuditRecord,
    AuditStore,
    Checkpoint,
    CheckpointReason,
    Head,
    PruneResult,
    RecordFilter,
    VerifyReport,
)
from sandgate.audit.chain import (
    RECORD_FIELDS,
    canonical,
    check_hmac_key,
    format_time,
    seal_fields,
    sign_checkpoint,
)
from sandgate.audit.guard import DEFAULT_KEY_PREFIX, EventGuard
from sandgate.audit.verifier import ChainVerifier, merge

__all__ = [
    "COLUMNS",
    "CP_COLUMNS",
    "SELECT_CHECKPOINTS",
    "SELECT_RECORDS",
    "Sealed",
    "SqlAuditStore",
    "checkpoint_row",
    "fields_row",
    "insert_sql",
    "now_after",
    "row_checkpoint",
    "row_record",
    "where_sql",
]

log = structlog.get_logger(__name__)

COLUMNS: tuple[str, ...] = (*RECORD_FIELDS, "hash")
CP_COLUMNS = ("seq", "hash", "time", "reason", "mac")
SELECT_RECORDS = f"SELECT {', '.join(COLUMNS)} FROM audit_records"
SELECT_CHECKPOINTS = f"SELECT {', '.join(CP_COLUMNS)} FROM audit_checkpoints"
MAX_PAGE = 1000


def insert_sql(table: str, columns: Sequence[str], placeholder: str) -> str:
    """`INSERT INTO table (columns) VALUES (...)` in a backend's parameter style."""
    values = ", ".join([placeholder] * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"


def where_sql(where: RecordFilter | None, ph: str) -> tuple[str, list[Any]]:
    """A ` WHERE ...` clause (or "") and its parameters, with `ph` as the placeholder."""
    conds: list[str] = []
    params: list[Any] = []

    def add(cond: str, value: Any) -> None:
        conds.append(cond.format(ph=ph))
        params.append(value)

    if where is not None:
        if where.since is not None:
            add("time >= {ph}", format_time(where.since))
        if where.until is not None:
            add("time < {ph}", format_time(where.until))
        for column in ("key_id", "tenant", "action", "verdict"):
            value = getattr(where, column)
            if value is not None:
                add(f"{column} = {{ph}}", value)
        if where.min_seq is not None:
            add("seq >= {ph}", where.min_seq)
        if where.max_seq is not None:
            add("seq <= {ph}", where.max_seq)
    return (" WHERE " + " AND ".join(conds)) if conds else "", params


def fields_row(fields: dict[str, Any]) -> tuple[Any, ...]:
    """A record's fields as a row in COLUMNS order (content and details as canonical JSON)."""
    row = dict(fields, content=canonical(fields["content"]), details=canonical(fields["details"]))
    return tuple(row[name] for name in COLUMNS)


def row_record(row: Sequence[Any]) -> AuditRecord:
    """A row read back as a record; `AuditCorrupt` if it cannot be one."""
    values = dict(zip(COLUMNS, row, strict=True))
    seq = values["seq"] if isinstance(values["seq"], int) else -1
    try:
        values["content"] = json.loads(values["content"])
        values["details"] = json.loads(values["details"])
        return AuditRecord.model_validate(values)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValidationError):
            where = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors())
            raise AuditCorrupt(seq, f"stored fields are invalid ({where})") from None
        raise AuditCorrupt(seq, "stored content or details are not JSON") from None


def now_after(head: Head) -> str:
    """The current time, or the head's if the clock is behind it: time never runs backwards."""
    return max(format_time(datetime.now(UTC)), head.time or "")


def row_checkpoint(row: Sequence[Any]) -> Checkpoint:
    """A checkpoint row read back; `AuditCorrupt` if it cannot be one."""
    values = dict(zip(CP_COLUMNS, row, strict=True))
    try:
        return Checkpoint.model_validate(values)
    except ValidationError:
        seq = values["seq"] if isinstance(values["seq"], int) else -1
        raise AuditCorrupt(seq, "a checkpoint row is invalid") from None


def checkpoint_row(cp: Checkpoint) -> tuple[Any, ...]:
    """The checkpoint as a row in CP_COLUMNS order."""
    return (cp.seq, cp.hash, cp.time, cp.reason, cp.mac)


class Sealed:
    """A batch sealed under the write lock: records, their rows, the new head, a checkpoint."""

    def __init__(
        self,
        records: list[AuditRecord],
        rows: list[tuple[Any, ...]],
        checkpoint: Checkpoint | None,
    ) -> None:
        self.records = records
        self.rows = rows
        self.checkpoint = checkpoint
        last = records[-1]
        self.head = Head(seq=last.seq, hash=last.hash, time=last.time)


class SqlAuditStore(AuditStore):
    """The logic both SQL backends share; they supply connections, locking and SQL."""

    def __init__(
        self,
        *,
        hmac_key: bytes | None = None,
        checkpoint_every: int = 1000,
        checkpoint_interval: float = 300.0,
        key_prefix: str = DEFAULT_KEY_PREFIX,
    ) -> None:
        if hmac_key is not None:
            check_hmac_key(hmac_key)
        if checkpoint_every < 0 or checkpoint_interval < 0:
            raise ValueError("checkpoint_every and checkpoint_interval must be >= 0 (0: off)")
        self._hmac_key = hmac_key
        self._every = checkpoint_every
        self._interval = checkpoint_interval
        self._last_checkpoint = monotonic_clock.monotonic()
        self.guard = EventGuard(key_prefix)
        self._group = GroupCommit(self._commit)

    def append(self, event: AuditEvent) -> AuditRecord:
        """Seal and durably commit one event; concurrent callers share a transaction."""
        self._prepare([event])
        return self._group.submit(event)

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Seal and commit several events in one transaction (all or none)."""
        self._prepare(events)
        return self._commit(events)

    placeholder = "?"

    @abc.abstractmethod
    def _write(self) -> AbstractContextManager[tuple[Any, Head]]:
        """One write transaction, serialised across threads, processes and hosts: the
        connection and the head as it is inside that transaction."""

    @abc.abstractmethod
    def _insert_rows(self, conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        """Insert record rows on `conn` inside its transaction."""

    def _after_prune(self) -> None:  # noqa: B027 - only SQLite has space to hand back
        """Housekeeping once a prune is committed."""

    def _sql(self, template: str) -> str:
        return template.replace("?", self.placeholder)

    def _commit(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Seal and commit already-checked events in one transaction, under the write lock."""
        with self._write() as (conn, head):
            sealed = self._seal(events, head)
            self._insert_rows(conn, sealed.rows)
            if sealed.checkpoint is not None:
                conn.execute(self._insert_cp, checkpoint_row(sealed.checkpoint))
            conn.execute(
                self._sql("UPDATE audit_head SET seq = ?, hash = ?, time = ? WHERE id = 1"),
                (sealed.head.seq, sealed.head.hash, sealed.head.time),
            )
        self._committed(sealed)
        return sealed.records

    @property
    def _insert_cp(self) -> str:
        return insert_sql("audit_checkpoints", CP_COLUMNS, self.placeholder)

    def checkpoint(self, hmac_key: bytes, *, reason: CheckpointReason = "manual") -> Checkpoint:
        """Sign the current head now (or return the same-reason checkpoint already there)."""
        with self._write() as (conn, head):
            if head.seq == 0:
                raise AuditError("the audit log is empty: there is nothing to checkpoint")
            row = conn.execute(
                self._sql(f"{SELECT_CHECKPOINTS} WHERE seq = ? AND reason = ?"),
                (head.seq, reason),
            ).fetchone()
            if row is not None:
                return row_checkpoint(row)
            cp = sign_checkpoint(
                hmac_key, seq=head.seq, hash=head.hash, time=now_after(head), reason=reason
            )
            conn.execute(self._insert_cp, checkpoint_row(cp))
        self._logged_checkpoint(cp)
        return cp

    def prune(self, before: datetime, hmac_key: bytes) -> PruneResult:
        """Delete records older than `before` in one transaction, after a signed checkpoint."""
        with self._write() as (conn, head):
            row = conn.execute(
                self._sql(
                    "SELECT seq, hash FROM audit_records WHERE time < ? ORDER BY seq DESC LIMIT 1"
                ),
                (format_time(before),),
            ).fetchone()
            if row is None:
                return PruneResult(deleted=0, checkpoint=None)
            cp = sign_checkpoint(
                hmac_key, seq=row[0], hash=row[1], time=now_after(head), reason="prune"
            )
            conn.execute(self._insert_cp, checkpoint_row(cp))
            deleted = conn.execute(
                self._sql("DELETE FROM audit_records WHERE seq <= ?"), (cp.seq,)
            ).rowcount
            conn.execute(self._sql("DELETE FROM audit_checkpoints WHERE seq < ?"), (cp.seq,))
        self._after_prune()
        self._logged_checkpoint(cp)
        return PruneResult(deleted=deleted, checkpoint=cp)

    def _prepare(self, events: Sequence[AuditEvent]) -> None:
        """Refuse the batch before taking any lock if one event may not be stored."""
        if not events:
            raise ValueError("append_many needs at least one event")
        for event in events:
            self.guard.check(event)

    def _seal(self, events: Sequence[AuditEvent], head: Head) -> Sealed:
        """Chain the events after `head`; called with the write lock held."""
        # Never let time run backwards along the chain, even if the clock does: time filters
        # and retention then always cut the log at one seq.
        moment = now_after(head)
        prev, seq = head.hash, head.seq
        records: list[AuditRecord] = []
        rows: list[tuple[Any, ...]] = []
        for event in events:
            seq += 1
            fields = seal_fields(
                event.model_dump(),
                seq=seq,
                record_id=str(uuid.uuid4()),
                time=moment,
                prev_hash=prev,
            )
            rows.append(fields_row(fields))
            # Validated on construction, sealed by us: no need to validate again.
            records.append(AuditRecord.model_construct(**fields))
            prev = fields["hash"]
        checkpoint = None
        if self._hmac_key is not None and self._checkpoint_due(head.seq, seq):
            checkpoint = sign_checkpoint(
                self._hmac_key, seq=seq, hash=prev, time=moment, reason="periodic"
            )
        return Sealed(records, rows, checkpoint)

    def _checkpoint_due(self, old_seq: int, new_seq: int) -> bool:
        if self._every and new_seq // self._every > old_seq // self._every:
            return True
        elapsed = monotonic_clock.monotonic() - self._last_checkpoint
        return bool(self._interval) and elapsed >= self._interval

    def _committed(self, sealed: Sealed) -> None:
        """Bookkeeping once a sealed batch is durable."""
        if sealed.checkpoint is not None:
            self._logged_checkpoint(sealed.checkpoint)

    def _logged_checkpoint(self, cp: Checkpoint) -> None:
        # The service's logs go elsewhere than the database: a second witness of the head.
        self._last_checkpoint = monotonic_clock.monotonic()
        log.info("audit.checkpoint", **cp.model_dump())

    # -- reads: the same SQL on both backends but for the parameter placeholder ------------

    @abc.abstractmethod
    def _stream(self, sql: str, params: Sequence[Any], batch_size: int) -> Iterator[Any]:
        """Rows of `sql`, fetched in batches on a connection of their own."""

    @abc.abstractmethod
    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        """All rows of a short query."""

    def iter_records(
        self, where: RecordFilter | None = None, *, batch_size: int = 500
    ) -> Generator[AuditRecord]:
        """Stream matching records oldest first, in constant memory."""
        clause, params = where_sql(where, self.placeholder)
        for row in self._stream(f"{SELECT_RECORDS}{clause} ORDER BY seq", params, batch_size):
            yield row_record(row)

    def iter_checkpoints(
        self, *, min_seq: int | None = None, max_seq: int | None = None
    ) -> Generator[Checkpoint]:
        """Stream checkpoints by seq (then reason), oldest first."""
        lo, hi = min_seq if min_seq is not None else 0, max_seq if max_seq is not None else 2**62
        ph = self.placeholder
        sql = f"{SELECT_CHECKPOINTS} WHERE seq >= {ph} AND seq <= {ph} ORDER BY seq, reason"
        for row in self._stream(sql, (lo, hi), 500):
            yield row_checkpoint(row)

    def last_checkpoint(self, at_or_before: int) -> Checkpoint | None:
        """The newest checkpoint signing a seq at or before `at_or_before`."""
        sql = (
            f"{SELECT_CHECKPOINTS} WHERE seq <= {self.placeholder} "
            "ORDER BY seq DESC, reason DESC LIMIT 1"
        )
        rows = self._query(sql, (at_or_before,))
        return row_checkpoint(rows[0]) if rows else None

    def page(
        self, where: RecordFilter | None = None, *, limit: int = 50, before_seq: int | None = None
    ) -> list[AuditRecord]:
        """Up to `limit` matching records, newest first, with seq < `before_seq`."""
        self._check_limit(limit)
        ph = self.placeholder
        clause, params = where_sql(where, ph)
        if before_seq is not None:
            clause += (" AND" if clause else " WHERE") + f" seq < {ph}"
            params.append(before_seq)
        sql = f"{SELECT_RECORDS}{clause} ORDER BY seq DESC LIMIT {ph}"
        return [row_record(row) for row in self._query(sql, [*params, limit])]

    def count(self, where: RecordFilter | None = None) -> int:
        """How many records match."""
        clause, params = where_sql(where, self.placeholder)
        return int(self._query(f"SELECT count(*) FROM audit_records{clause}", params)[0][0])

    @staticmethod
    def _check_limit(limit: int) -> None:
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}")

    def verify(
        self, hmac_key: bytes | None = None, *, witness: Checkpoint | None = None
    ) -> VerifyReport:
        """Walk the whole chain and its checkpoints; report the first record that does not hold."""
        if hmac_key is not None:
            check_hmac_key(hmac_key)
        head = self.head()
        verifier = ChainVerifier(hmac_key, mode="log")
        if witness is not None and witness.seq > head.seq:
            verifier.fail(
                head.seq + 1,
                f"is missing: the witness checkpoint signs seq {witness.seq}, but the log ends "
                f"at seq {head.seq}",
            )
            return verifier.finish()
        records = self.iter_records(RecordFilter(max_seq=head.seq))
        checkpoints = self.iter_checkpoints(max_seq=head.seq)
        with closing(records), closing(checkpoints):
            signed: Iterable[Checkpoint] = checkpoints
            if witness is not None:
                signed = heapq.merge(checkpoints, [witness], key=lambda cp: cp.seq)
            try:
                verifier.feed_all(merge(records, signed))
            except AuditCorrupt as exc:
                verifier.fail(exc.seq, exc.reason)
        if not verifier.failed:
            self._check_beyond_head(verifier)
        return verifier.finish(head)

    def _check_beyond_head(self, verifier: ChainVerifier) -> None:
        """A checkpoint past the current head means the head and tail were rolled back."""
        newest = self.last_checkpoint(at_or_before=2**62)
        head_now = self.head()
        if newest is not None and newest.seq > head_now.seq:
            verifier.fail(
                head_now.seq + 1,
                f"is missing: a {newest.reason} checkpoint signs seq {newest.seq}, but the "
                f"log's head was set back to seq {head_now.seq}",
            )
