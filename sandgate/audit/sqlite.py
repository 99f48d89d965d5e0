"""The embedded audit store: one SQLite file in WAL mode.

Durability: `synchronous=FULL`, so each commit fsyncs the WAL before `append` returns. With
NORMAL a WAL commit survives a killed process (the OS page cache has it) but not a power cut;
the promise is that no answered request loses its record, so FULL it is (cost: one fsync per
append; the benchmark measures it).

Serialisation: an append is `BEGIN IMMEDIATE` (the database's single write lock, which holds
across processes), read the head row, insert, move the head, `COMMIT`. Threads of one process
share transactions (group commit) and queue on a lock, so they hand over without SQLite's
sleeping busy handler; other processes wait up to the busy timeout, then `AuditUnavailable`.
`prev_hash` is UNIQUE, so even a bug cannot fork the chain.

Triggers refuse UPDATE and DELETE, except deleting records (and superseded checkpoints) that a
`prune` checkpoint covers: the path `prune` takes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sandgate.audit._pool import ConnectionPool
from sandgate.audit._schema import SCHEMA_VERSION, SQLITE_SCHEMA
from sandgate.audit._sql import (
    COLUMNS,
    CP_COLUMNS,
    SELECT_CHECKPOINTS,
    SqlAuditStore,
    checkpoint_row,
    insert_sql,
    now_after,
    row_checkpoint,
)
from sandgate.audit.base import (
    AuditError,
    AuditEvent,
    AuditRecord,
    AuditUnavailable,
    Checkpoint,
    CheckpointReason,
    Head,
    PruneResult,
)
from sandgate.audit.chain import format_time, sign_checkpoint

__all__ = ["SQLiteAuditStore"]

_INSERT = insert_sql("audit_records", COLUMNS, "?")
_INSERT_CP = insert_sql("audit_checkpoints", CP_COLUMNS, "?")


class SQLiteAuditStore(SqlAuditStore):
    """The audit log in one SQLite file (WAL, synchronous=FULL)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0, **options: Any) -> None:
        super().__init__(**options)
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._write_lock = threading.Lock()
        self._pool: ConnectionPool[sqlite3.Connection] = ConnectionPool(
            self._connect, sqlite3.Connection.close
        )
        self._create_private()
        with self._errors(), self._pool.connection() as conn:
            self._create_schema(conn)

    def _create_private(self) -> None:
        """Create the file readable by its owner only (SQLite gives -wal/-shm the same mode)."""
        try:
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise AuditUnavailable(f"audit database {self.path}: {exc.strerror}") from exc

    def _errors(self) -> AbstractContextManager[None]:
        return _sqlite_errors(self.path)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise AuditUnavailable(f"{self.path}: cannot switch to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous=FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        if conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
            return
        # Only takes effect on an empty file: lets prune hand pages back to the filesystem.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                    for statement in _split(SQLITE_SCHEMA):
                        conn.execute(statement)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, serialised across threads and processes."""
        with self._write_lock, self._errors(), self._pool.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _head(conn: sqlite3.Connection) -> Head:
        seq, hash_, time = conn.execute("SELECT seq, hash, time FROM audit_head").fetchone()
        return Head(seq=seq, hash=hash_, time=time)

    def _commit(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Seal and commit checked events in one transaction (all or none)."""
        with self._write() as conn:
            sealed = self._seal(events, self._head(conn))
            conn.executemany(_INSERT, sealed.rows)
            if sealed.checkpoint is not None:
                conn.execute(_INSERT_CP, checkpoint_row(sealed.checkpoint))
            conn.execute(
                "UPDATE audit_head SET seq = ?, hash = ?, time = ?",
                (sealed.head.seq, sealed.head.hash, sealed.head.time),
            )
        self._committed(sealed)
        return sealed.records

    def _stream(self, sql: str, params: Sequence[Any], batch_size: int) -> Iterator[Any]:
        """Rows of a query on a connection of its own, fetched in batches."""
        if self._pool.closed:
            raise AuditError("the audit store is closed")
        with self._errors():
            conn = self._connect()
        try:
            with self._errors():
                cursor = conn.execute(sql, params)
            while True:
                with self._errors():
                    rows = cursor.fetchmany(batch_size)
                if not rows:
                    return
                yield from rows
        finally:
            conn.close()

    def _query(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._errors(), self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def head(self) -> Head:
        """The last seq and hash handed out."""
        with self._errors(), self._pool.connection() as conn:
            return self._head(conn)

    def checkpoint(self, hmac_key: bytes, *, reason: CheckpointReason = "manual") -> Checkpoint:
        """Sign the current head now (or return the same-reason checkpoint already there)."""
        with self._write() as conn:
            head = self._head(conn)
            if head.seq == 0:
                raise AuditError("the audit log is empty: there is nothing to checkpoint")
            rows = conn.execute(
                f"{SELECT_CHECKPOINTS} WHERE seq = ? AND reason = ?", (head.seq, reason)
            ).fetchall()
            if rows:
                return row_checkpoint(rows[0])
            cp = sign_checkpoint(
                hmac_key, seq=head.seq, hash=head.hash, time=now_after(head), reason=reason
            )
            conn.execute(_INSERT_CP, checkpoint_row(cp))
        self._logged_checkpoint(cp)
        return cp

    def prune(self, before: datetime, hmac_key: bytes) -> PruneResult:
        """Delete records older than `before` in one transaction, after a signed checkpoint."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT seq, hash FROM audit_records WHERE time < ? ORDER BY seq DESC LIMIT 1",
                (format_time(before),),
            ).fetchone()
            if row is None:
                return PruneResult(deleted=0, checkpoint=None)
            cp = sign_checkpoint(
                hmac_key, seq=row[0], hash=row[1], time=now_after(self._head(conn)), reason="prune"
            )
            conn.execute(_INSERT_CP, checkpoint_row(cp))
            deleted = conn.execute("DELETE FROM audit_records WHERE seq <= ?", (cp.seq,)).rowcount
            conn.execute("DELETE FROM audit_checkpoints WHERE seq < ?", (cp.seq,))
        self._query("PRAGMA incremental_vacuum", ())
        self._logged_checkpoint(cp)
        return PruneResult(deleted=deleted, checkpoint=cp)

    def close(self) -> None:
        """Close the store's connections; it cannot be used afterwards."""
        self._pool.close()


def _split(script: str) -> list[str]:
    """Statements of the schema script (triggers contain `;` inside BEGIN...END)."""
    statements, current = [], ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


@contextmanager
def _sqlite_errors(path: Path) -> Iterator[None]:
    """Turn sqlite3's errors into `AuditUnavailable`, naming the file but no content."""
    try:
        yield
    except sqlite3.Error as exc:
        raise AuditUnavailable(f"audit database {path}: {exc}") from exc
