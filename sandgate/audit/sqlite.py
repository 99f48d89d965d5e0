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
from pathlib import Path
from typing import Any

from sandgate.audit._schema import SCHEMA_VERSION, SQLITE_SCHEMA
from sandgate.audit._sql import (
    COLUMNS,
    SqlAuditStore,
    insert_sql,
)
from sandgate.audit.base import (
    AuditError,
    AuditUnavailable,
    Head,
)
from sandgate.db.pool import ConnectionPool

__all__ = ["SQLiteAuditStore"]

_INSERT = insert_sql("audit_records", COLUMNS, "?")


class SQLiteAuditStore(SqlAuditStore):
    """The audit log in one SQLite file (WAL, synchronous=FULL)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0, **options: Any) -> None:
        super().__init__(**options)
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._write_lock = threading.Lock()
        self._pool: ConnectionPool[sqlite3.Connection] = ConnectionPool(
            self._connect,
            sqlite3.Connection.close,
            closed_error=lambda: AuditError("the audit store is closed"),
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
    def _write(self) -> Iterator[tuple[sqlite3.Connection, Head]]:
        """One write transaction, serialised across threads and processes."""
        with self._write_lock, self._errors(), self._pool.connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn, self._head(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _head(conn: sqlite3.Connection) -> Head:
        seq, hash_, time = conn.execute("SELECT seq, hash, time FROM audit_head").fetchone()
        return Head(seq=seq, hash=hash_, time=time)

    def _insert_rows(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        conn.executemany(_INSERT, rows)

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

    def _after_prune(self) -> None:
        self._query("PRAGMA incremental_vacuum", ())

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
