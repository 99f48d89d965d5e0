"""The usage store in SQLite (WAL) in the state directory: shared by one host's workers."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from sandgate.sqlitedb import open_shared, transaction
from sandgate.usage.base import Usage, UsageStore

__all__ = ["SqliteUsageStore"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage (subject TEXT NOT NULL, day TEXT NOT NULL,"
    " executions INTEGER NOT NULL DEFAULT 0, cpu_seconds REAL NOT NULL DEFAULT 0,"
    " session_hours REAL NOT NULL DEFAULT 0, PRIMARY KEY (subject, day))",
    "CREATE TABLE IF NOT EXISTS host_cpu (minute INTEGER PRIMARY KEY, cpu_seconds REAL NOT NULL)",
)


class SqliteUsageStore(UsageStore):
    """`usage.db`: one row per subject and day, one per minute of host CPU."""

    def __init__(self, path: Path) -> None:
        self._db = open_shared(path)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")  # counters, not the audit log
            for statement in _SCHEMA:
                self._db.execute(statement)

    def add(self, subjects: Sequence[str], day: str, usage: Usage) -> None:
        rows = [
            (s, day, usage.executions, usage.cpu_seconds, usage.session_hours) for s in subjects
        ]
        with self._lock, transaction(self._db) as db:
            db.executemany(
                "INSERT INTO usage VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject, day) DO UPDATE"
                " SET executions = executions + excluded.executions,"
                " cpu_seconds = cpu_seconds + excluded.cpu_seconds,"
                " session_hours = session_hours + excluded.session_hours",
                rows,
            )

    def used(self, subject: str, day: str) -> Usage:
        with self._lock:
            row = self._db.execute(
                "SELECT executions, cpu_seconds, session_hours FROM usage"
                " WHERE subject = ? AND day = ?",
                (subject, day),
            ).fetchone()
        if row is None:
            return Usage()
        return Usage(executions=row[0], cpu_seconds=row[1], session_hours=row[2])

    def add_host_cpu(self, minute: int, cpu_seconds: float) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO host_cpu VALUES (?, ?) ON CONFLICT (minute) DO UPDATE"
                " SET cpu_seconds = cpu_seconds + excluded.cpu_seconds",
                (minute, cpu_seconds),
            )

    def host_cpu(self, since_minute: int) -> float:
        with self._lock:
            (total,) = self._db.execute(
                "SELECT COALESCE(SUM(cpu_seconds), 0) FROM host_cpu WHERE minute >= ?",
                (since_minute,),
            ).fetchone()
        return float(total)

    def prune(self, before_day: str, before_minute: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM usage WHERE day < ?", (before_day,))
            self._db.execute("DELETE FROM host_cpu WHERE minute < ?", (before_minute,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
