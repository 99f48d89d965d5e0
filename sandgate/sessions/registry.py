"""The sessions' registry: every session started, live or ended, why it ended, and which worker
holds its sandbox.

It outlives the process: a session still `active` when its node starts again lost its sandbox
with the old process, and is ended with reason `restart`; an ended session answers 410 with
its reason for as long as its row is kept (`KEEP_ENDED_S`). SQLite in the state directory for
one host, or PostgreSQL shared by every node (`sandgate.db`), where any API node finds the
worker a session lives on (`worker`, its consumer name in the queue) and the node it runs on
(`node`). Ending is a compare-and-set, so a session is ended (and its end audited) once, by
whichever node gets there first. The live sandboxes themselves are held by `SessionManager`.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from sandgate.db.base import Database

__all__ = ["KEEP_ENDED_S", "SessionRecord", "SessionRegistry"]

KEEP_ENDED_S = 7 * 86_400
_COLUMNS = (
    "id, tenant, key_id, key_name, policy, policy_hash, language, image, memory_mb,"
    " created_at, expires_at, idle_timeout_s, last_used_at, executions, files_bytes,"
    " ended_at, end_reason, node, worker"
)
_NAMES = [c.strip() for c in _COLUMNS.split(",")]
_TIME = "DOUBLE PRECISION"
_TABLE = (
    "CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, tenant TEXT NOT NULL,"
    " key_id TEXT NOT NULL, key_name TEXT NOT NULL, policy TEXT NOT NULL,"
    " policy_hash TEXT NOT NULL, language TEXT NOT NULL, image TEXT,"
    f" memory_mb INTEGER NOT NULL, created_at {_TIME} NOT NULL, expires_at {_TIME} NOT NULL,"
    f" idle_timeout_s {_TIME} NOT NULL, last_used_at {_TIME} NOT NULL,"
    f" executions INTEGER NOT NULL, files_bytes BIGINT NOT NULL, ended_at {_TIME},"
    " end_reason TEXT, node TEXT, worker TEXT)"
)
_ADDED = {"node": "TEXT", "worker": "TEXT"}  # a registry from before sessions moved


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
    node: str | None = None
    worker: str | None = None

    @property
    def active(self) -> bool:
        """True until the session ends."""
        return self.ended_at is None


class SessionRegistry:
    """The `sessions` table; safe across threads, processes and (on PostgreSQL) hosts."""

    def __init__(self, db: Database) -> None:
        self._db = db
        db.create([_TABLE])
        with db.transaction(lock="sessions") as tx:
            for name in (n for n in _ADDED if n not in db.columns("sessions", tx)):
                tx.execute(f"ALTER TABLE sessions ADD COLUMN {name} {_ADDED[name]}")

    def close(self) -> None:
        """Release the database."""
        self._db.close()

    def add(self, record: SessionRecord) -> None:
        """Register a new session."""
        values = record.model_dump()
        self._db.execute(
            f"INSERT INTO sessions ({_COLUMNS}) VALUES ({', '.join('?' * len(_NAMES))})",
            tuple(values[name] for name in _NAMES),
        )

    def get(self, session_id: str) -> SessionRecord | None:
        """The session, live or ended; None if unknown."""
        row = self._db.execute(f"SELECT {_COLUMNS} FROM sessions WHERE id = ?", (session_id,)).one()
        return _record(row) if row else None

    def active(
        self,
        *,
        tenant: str | None = None,
        key_id: str | None = None,
        node: str | None = None,
        worker: str | None = None,
    ) -> list[SessionRecord]:
        """Live sessions, optionally of one tenant, key, node or worker, oldest first."""
        where, params = ["ended_at IS NULL"], []
        for column, value in (
            ("tenant", tenant),
            ("key_id", key_id),
            ("node", node),
            ("worker", worker),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM sessions WHERE {' AND '.join(where)} ORDER BY created_at",
            params,
        ).rows
        return [_record(r) for r in rows]

    def left_by(self, node: str) -> list[SessionRecord]:
        """Live sessions a node registered (or a registry from before nodes were named)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM sessions WHERE ended_at IS NULL"
            " AND (node = ? OR node IS NULL) ORDER BY created_at",
            (node,),
        ).rows
        return [_record(r) for r in rows]

    def holders(self) -> set[str]:
        """The workers that hold live sessions."""
        rows = self._db.execute(
            "SELECT DISTINCT worker FROM sessions WHERE ended_at IS NULL AND worker IS NOT NULL"
        ).rows
        return {str(r[0]) for r in rows}

    def used(self, session_id: str, *, executions: int = 0, files_bytes: int = 0) -> None:
        """Note a use now (the idle clock restarts), and what it added."""
        self._db.execute(
            "UPDATE sessions SET last_used_at = ?, executions = executions + ?,"
            " files_bytes = files_bytes + ? WHERE id = ?",
            (time.time(), executions, files_bytes, session_id),
        )

    def end(self, session_id: str, reason: str) -> SessionRecord | None:
        """End a live session with `reason`; None when it had already ended (or is unknown)."""
        changed = self._db.execute(
            "UPDATE sessions SET ended_at = ?, end_reason = ? WHERE id = ? AND ended_at IS NULL",
            (time.time(), reason, session_id),
        ).count
        return self.get(session_id) if changed else None

    def forget_ended(self, before: float) -> int:
        """Drop rows of sessions that ended before `before`; how many."""
        return self._db.execute(
            "DELETE FROM sessions WHERE ended_at IS NOT NULL AND ended_at < ?", (before,)
        ).count


def _record(row: tuple[object, ...]) -> SessionRecord:
    return SessionRecord.model_validate(dict(zip(_NAMES, row, strict=True)))
