"""A shared store's database in SQLite (WAL) in the state directory: one host's workers share
the file; one connection per process, its statements one at a time.

Every worker process of a host opens the same files: the busy wait is set before switching to
WAL, because a second worker opening a new database meets the first one's lock. A write
transaction is `BEGIN IMMEDIATE`, so writers queue on the file itself (a lock name adds
nothing). A database still locked after the busy wait is `StoreUnavailable`.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception, stop_after_delay, wait_random

from sandgate.db.base import Database, Result, Statements, rows_of
from sandgate.errors import StoreUnavailable

__all__ = ["SqliteDatabase", "open_shared"]


def open_shared(path: Path) -> sqlite3.Connection:
    """A connection (autocommit, any thread) to the WAL database at `path`, made if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        db.execute("PRAGMA journal_mode=WAL")
    except BaseException:
        db.close()
        raise
    return db


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


@retry(
    retry=retry_if_exception(_locked),
    stop=stop_after_delay(15),
    wait=wait_random(0.05, 0.25),
    reraise=True,
)
def _opened(path: Path, synchronous: str) -> sqlite3.Connection:
    """`open_shared` with the synchronous mode set. Switching a new file to WAL can meet a
    sibling worker doing the same at start and fail at once, busy wait or not: tried again
    for a while."""
    db = open_shared(path)
    try:
        db.execute(f"PRAGMA synchronous={synchronous}")
    except BaseException:
        db.close()
        raise
    return db


class _Tx:
    """The statements of one transaction on the connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        cursor = self._db.execute(sql, params)
        return Result(list(rows_of(cursor)), cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        return self._db.executemany(sql, rows).rowcount


class SqliteDatabase(Database):
    """`<state>/<name>.db`."""

    def __init__(self, path: Path, name: str, *, synchronous: str = "FULL") -> None:
        self.name = name
        self.path = path
        self._lock = threading.Lock()
        with self._errors():
            self._db = _opened(path, synchronous)
        self._tx = _Tx(self._db)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"{self.name} database: {exc}") from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        with self._lock, self._errors():
            return self._tx.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self.transaction() as tx:
            return tx.executemany(sql, rows)

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[_Tx]:
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def columns(self, table: str, via: Statements | None = None) -> set[str]:
        sql = f"PRAGMA table_info({table})"
        if via is not None:
            return {row[1] for row in via.execute(sql).rows}
        with self._lock, self._errors():
            return {row[1] for row in self._db.execute(sql)}

    def close(self) -> None:
        with self._lock:
            self._db.close()
