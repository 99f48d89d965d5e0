"""The usage store in SQL: SQLite (WAL) in the state directory, shared by one host's workers, or
PostgreSQL, shared by every node (the same statements on both, `sandgate.db`).

Every `add` is one upsert per subject in one transaction: counters only grow, atomically,
whichever node adds. With PostgreSQL, the host's CPU counter is the deployment's: every node
adds to the same minutes, so the CPU breaker's budget is one for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sandgate.db.base import Database
from sandgate.db.postgres import PostgresDatabase
from sandgate.db.sqlite import SqliteDatabase
from sandgate.usage.base import Usage, UsageStore

__all__ = ["PostgresUsageStore", "SqlUsageStore", "SqliteUsageStore"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (subject TEXT NOT NULL, day TEXT NOT NULL,"
    " executions BIGINT NOT NULL DEFAULT 0, cpu_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,"
    " session_hours DOUBLE PRECISION NOT NULL DEFAULT 0, PRIMARY KEY (subject, day))",
    "CREATE TABLE IF NOT EXISTS host_cpu (minute BIGINT PRIMARY KEY,"
    " cpu_seconds DOUBLE PRECISION NOT NULL)",
)


class SqlUsageStore(UsageStore):
    """One row per subject and day, one per minute of host CPU."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.create(_SCHEMA)

    def add(self, subjects: Sequence[str], day: str, usage: Usage) -> None:
        rows = [
            (s, day, usage.executions, usage.cpu_seconds, usage.session_hours) for s in subjects
        ]
        self._db.executemany(
            "INSERT INTO usage VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject, day) DO UPDATE"
            " SET executions = usage.executions + excluded.executions,"
            " cpu_seconds = usage.cpu_seconds + excluded.cpu_seconds,"
            " session_hours = usage.session_hours + excluded.session_hours",
            rows,
        )

    def used(self, subject: str, day: str) -> Usage:
        row = self._db.execute(
            "SELECT executions, cpu_seconds, session_hours FROM usage"
            " WHERE subject = ? AND day = ?",
            (subject, day),
        ).one()
        if row is None:
            return Usage()
        return Usage(executions=row[0], cpu_seconds=row[1], session_hours=row[2])

    def add_host_cpu(self, minute: int, cpu_seconds: float) -> None:
        self._db.execute(
            "INSERT INTO host_cpu VALUES (?, ?) ON CONFLICT (minute) DO UPDATE"
            " SET cpu_seconds = host_cpu.cpu_seconds + excluded.cpu_seconds",
            (minute, cpu_seconds),
        )

    def host_cpu(self, since_minute: int) -> float:
        row = self._db.execute(
            "SELECT COALESCE(SUM(cpu_seconds), 0) FROM host_cpu WHERE minute >= ?",
            (since_minute,),
        ).one()
        return float(row[0]) if row else 0.0

    def prune(self, before_day: str, before_minute: int) -> None:
        self._db.execute("DELETE FROM usage WHERE day < ?", (before_day,))
        self._db.execute("DELETE FROM host_cpu WHERE minute < ?", (before_minute,))

    def close(self) -> None:
        self._db.close()


class SqliteUsageStore(SqlUsageStore):
    """`usage.db` in the state directory."""

    def __init__(self, path: Path) -> None:
        # Counters, not the audit log: NORMAL is durable enough and cheaper.
        super().__init__(SqliteDatabase(path, "usage", synchronous="NORMAL"))


class PostgresUsageStore(SqlUsageStore):
    """The `usage` and `host_cpu` tables of the DSN's database."""

    def __init__(self, dsn: str) -> None:
        super().__init__(PostgresDatabase(dsn, "usage"))
