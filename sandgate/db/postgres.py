"""A shared store's database in PostgreSQL (psycopg 3): every node reads and writes the same rows.

Statements borrow a pooled autocommit connection; one that the server closed (a restart, an
idle timeout) is never lent again (`pool.alive`), and after a connection error every idle one is
dropped, so a restarted server is met with fresh connections and nothing needs restarting. A
transaction's `lock` is a transaction-level advisory lock on the name's hash. Connection
problems are `StoreUnavailable` naming the error, never the DSN; `connect_timeout` bounds how
long a call waits for a server that is away.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from sandgate.db.base import Database, Result, Statements, rows_of
from sandgate.db.pool import ConnectionPool, alive
from sandgate.errors import StoreUnavailable

__all__ = ["PostgresDatabase"]

Conn = psycopg.Connection[tuple[Any, ...]]


def _pg(sql: str) -> str:
    """A statement with psycopg's placeholders (none of ours holds a literal `?` or `%`)."""
    return sql.replace("?", "%s")


class _Tx:
    """The statements of one transaction on one connection."""

    def __init__(self, conn: Conn) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        cursor = self._conn.execute(_pg(sql), params)
        return Result(list(rows_of(cursor)), cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self._conn.cursor() as cursor:
            cursor.executemany(_pg(sql), rows)
            return cursor.rowcount


class PostgresDatabase(Database):
    """The tables of one store in the DSN's database (and `search_path`)."""

    def __init__(self, dsn: str, name: str, *, connect_timeout: int = 3) -> None:
        self.name = name
        self._dsn = dsn
        self._connect_timeout = connect_timeout
        self._pool: ConnectionPool[Conn] = ConnectionPool(
            self._connect,
            lambda c: c.close(),
            usable=alive,
            closed_error=lambda: StoreUnavailable(f"the {name} store is closed"),
        )

    def _connect(self) -> Conn:
        return psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._connect_timeout)

    @contextmanager
    def _connection(self) -> Iterator[Conn]:
        """A pooled connection; connection errors as `StoreUnavailable`."""
        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._pool.discard_idle()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise StoreUnavailable(f"{self.name} database: {type(exc).__name__}: {first}") from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Result:
        with self._connection() as conn:
            return _Tx(conn).execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self.transaction() as tx:
            return tx.executemany(sql, rows)

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[_Tx]:
        with self._connection() as conn, conn.transaction():
            if lock is not None:
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock,))
            yield _Tx(conn)

    def columns(self, table: str, via: Statements | None = None) -> set[str]:
        found = (via or self).execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
            " AND table_schema = current_schema()",
            (table,),
        )
        return {row[0] for row in found.rows}

    def close(self) -> None:
        self._pool.close()
