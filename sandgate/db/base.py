"""The small SQL databases the shared stores (keys, usage, the sessions' registry) are written
through: SQLite in the state directory for one host, PostgreSQL for several.

Every statement is written once, in SQL both engines run, with `?` placeholders; an engine's
unreachability is `StoreUnavailable` (503: nothing was done), whatever the engine says.
`transaction(lock=...)` is one write transaction; with a lock name, the transactions that
name it run one at a time, across every process and host sharing the database.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Database", "Result", "Statements", "rows_of"]

Params = Sequence[Any]


@dataclass(frozen=True)
class Result:
    """What a statement gave: its rows (none for a write) and how many rows it touched."""

    rows: list[tuple[Any, ...]]
    count: int

    def one(self) -> tuple[Any, ...] | None:
        """The first row, if any."""
        return self.rows[0] if self.rows else None


class Statements(Protocol):
    """What runs statements: the database itself (each one on its own) or a transaction."""

    def execute(self, sql: str, params: Params = ()) -> Result:
        """Run one statement."""
        ...

    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        """Run one statement once per row of parameters; rows touched in all."""
        ...


class Database(abc.ABC):
    """One database, safe to use from several threads at once."""

    name: str  # what an error names it by, e.g. "keys"

    @abc.abstractmethod
    def execute(self, sql: str, params: Params = ()) -> Result:
        """Run one statement on its own (autocommit)."""

    @abc.abstractmethod
    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        """Run one statement once per row of parameters, in one transaction."""

    @abc.abstractmethod
    def transaction(self, lock: str | None = None) -> AbstractContextManager[Statements]:
        """One write transaction: committed at the end of the block, rolled back on an
        error. With `lock`, one at a time among all transactions naming it."""

    @abc.abstractmethod
    def columns(self, table: str, via: Statements | None = None) -> set[str]:
        """The names of a table's columns (empty when there is no such table), as the
        transaction `via` sees them when given."""

    def create(self, statements: Sequence[str]) -> None:
        """Create what is missing (`CREATE ... IF NOT EXISTS`), one creator at a time."""
        with self.transaction(lock=f"schema:{self.name}") as tx:
            for statement in statements:
                tx.execute(statement)

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connections."""


def rows_of(cursor: Any) -> Iterator[tuple[Any, ...]]:
    """A DB-API cursor's rows, none when the statement returns none."""
    if cursor.description is None:
        return iter(())
    return iter(cursor.fetchall())
