"""The sessions' registry: every session this host started, live or ended, and why it ended.

It outlives the process: a session still `active` when a new service starts lost its sandbox
with the old process, and is ended with reason `restart`; an ended session answers 410 with
its reason for as long as its row is kept (`KEEP_ENDED_S`). SQLite in the state directory,
safe across threads; the live sandboxes themselves are held by `SessionManager`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pydantic import BaseModel

from sandgate.sqlitedb import open_shared

__all__ = ["KEEP_ENDED_S", "SessionRecord", "SessionRegistry"]

KEEP_ENDED_S = 7 * 86_400
_COLUMNS = (
    "id, tenant, key_id, key_name, policy, policy_hash, language, image, memory_mb,"
    " created_at, expires_at, idle_timeout_s, last_used_at, executions, files_bytes,"
    " ended_at, end_reason"
)


class SessionRecord(BaseModel):
    """One session as the registry keeps it (and `GET /sessions/{id}` shows it)."""

    id: str
    tenant: str
    key_id: str
    key_name: str
    policy: str
    policy_hash: str
    language: str
    image: str | None
    memory_mb: int
    created_at: float
    expires_at: float
    idle_timeout_s: float
    last_used_at: float
    executions: int = 0
    files_bytes: int = 0
    ended_at: float | None = None
    end_reason: str | None = None

    @property
    def active(self) -> bool:
        """True until the session ends."""
        return self.ended_at is None


class SessionRegistry:
    """The `sessions` table of `<state>/sessions.db`."""

    def __init__(self, path: Path) -> None:
        self._db = open_shared(path)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
                " key_id TEXT NOT NULL, key_name TEXT NOT NULL, policy TEXT NOT NULL,"
                " policy_hash TEXT NOT NULL, language TEXT NOT NULL, image TEXT,"
                " memory_mb INTEGER NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,"
                " idle_timeout_s REAL NOT NULL, last_used_at REAL NOT NULL,"
                " executions INTEGER NOT NULL, files_bytes INTEGER NOT NULL, ended_at REAL,"
                " end_reason TEXT)"
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def add(self, record: SessionRecord) -> None:
        """Register a new session."""
        values = record.model_dump()
        with self._lock:
            self._db.execute(
                f"INSERT INTO sessions ({_COLUMNS}) VALUES ({', '.join('?' * len(values))})",
                tuple(values.values()),
            )

    def get(self, session_id: str) -> SessionRecord | None:
        """The session, live or ended; None if unknown."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        return _record(row) if row else None

    def active(
        self, *, tenant: str | None = None, key_id: str | None = None
    ) -> list[SessionRecord]:
        """Live sessions, optionally of one tenant or one key, oldest first."""
        where, params = ["ended_at IS NULL"], []
        for column, value in (("tenant", tenant), ("key_id", key_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM sessions WHERE {' AND '.join(where)} ORDER BY created_at",
                params,
            ).fetchall()
        return [_record(r) for r in rows]

    def used(self, session_id: str, *, executions: int = 0, files_bytes: int = 0) -> None:
        """Note a use now (the idle clock restarts), and what it added."""
        with self._lock:
            self._db.execute(
                "UPDATE sessions SET last_used_at = ?, executions = executions + ?,"
                " files_bytes = files_bytes + ? WHERE id = ?",
                (time.time(), executions, files_bytes, session_id),
            )

    def end(self, session_id: str, reason: str) -> SessionRecord | None:
        """End a live session with `reason`; None when it had already ended (or is unknown)."""
        with self._lock:
            changed = self._db.execute(
                "UPDATE sessions SET ended_at = ?, end_reason = ?"
                " WHERE id = ? AND ended_at IS NULL",
                (time.time(), reason, session_id),
            ).rowcount
        return self.get(session_id) if changed else None

    def forget_ended(self, before: float) -> int:
        """Drop rows of sessions that ended before `before`; how many."""
        with self._lock:
            return self._db.execute(
                "DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < ?", (before,)
            ).rowcount


def _record(row: tuple[object, ...]) -> SessionRecord:
    names = [c.strip() for c in _COLUMNS.split(",")]
    return SessionRecord.model_validate(dict(zip(names, row, strict=True)))
