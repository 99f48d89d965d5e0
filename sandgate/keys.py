"""API keys: created once and shown once, stored only as SHA-256 hashes, never logged.

A key is `sg_` + 43 URL-safe characters (256 random bits), so a fast hash is as good as a slow
one here: nobody can brute-force the preimage. Lookups compare hashes through the primary-key
index; the key itself never touches the database, the logs or the audit log (records carry the
key's id and name).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel

__all__ = ["ApiKey", "KeyStore", "Scope", "KEY_PREFIX"]

KEY_PREFIX = "sg_"
ENV_KEY_NAME = "env"


class Scope(StrEnum):
    """What a key may do; `admin` implies every other scope."""

    EXECUTE = "execute"
    SCREEN = "screen"
    AUDIT_READ = "audit:read"
    POLICY_ADMIN = "policy:admin"
    ADMIN = "admin"


DEFAULT_SCOPES = (Scope.EXECUTE, Scope.SCREEN)


class ApiKey(BaseModel):
    """A key's public record (everything but the secret)."""

    id: str
    name: str
    tenant: str
    scopes: list[Scope]
    created_at: float
    revoked_at: float | None = None

    def allows(self, scope: Scope) -> bool:
        """True when the key holds `scope` or `admin`."""
        return Scope.ADMIN in self.scopes or scope in self.scopes


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class KeyStore:
    """SQLite table of hashed keys in the state directory; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            # The wait first: a second worker opening a new database meets the first's lock.
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (digest TEXT PRIMARY KEY, id TEXT UNIQUE,"
                " name TEXT NOT NULL, tenant TEXT NOT NULL, scopes TEXT NOT NULL,"
                " created_at REAL NOT NULL, revoked_at REAL)"
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def create(
        self, name: str, *, tenant: str = "default", scopes: tuple[Scope, ...] = DEFAULT_SCOPES
    ) -> tuple[str, ApiKey]:
        """Make a new key; returns the secret (show it once) and its record."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            return secret, self._insert(secret, name, tenant, scopes)

    def _insert(
        self,
        secret: str,
        name: str,
        tenant: str,
        scopes: tuple[Scope, ...],
        verb: str = "INSERT",
    ) -> ApiKey:
        """Add a key row; the caller holds `_lock`."""
        record = ApiKey(
            id=secrets.token_hex(8),
            name=name,
            tenant=tenant,
            scopes=list(scopes),
            created_at=time.time(),
        )
        self._db.execute(
            f"{verb} INTO api_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (_digest(secret), record.id, name, tenant, ",".join(scopes), record.created_at),
        )
        return record

    def seed(self, secret: str) -> None:
        """Install `secret` (from SANDGATE_API_KEY) as the admin key `env`, replacing an old one.

        One transaction: every worker of a new service seeds at once, and a check-then-insert
        let two of them insert the same key (the loser's start failed).
        """
        digest = _digest(secret)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "DELETE FROM api_keys WHERE (name = ? OR digest = ?)"
                    " AND NOT (name = ? AND digest = ? AND revoked_at IS NULL)",
                    (ENV_KEY_NAME, digest, ENV_KEY_NAME, digest),
                )
                self._insert(secret, ENV_KEY_NAME, "default", (Scope.ADMIN,), "INSERT OR IGNORE")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def lookup(self, secret: str) -> ApiKey | None:
        """The live key whose secret this is, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, tenant, scopes, created_at, revoked_at FROM api_keys"
                " WHERE digest = ? AND revoked_at IS NULL",
                (_digest(secret),),
            ).fetchone()
        return _row(row) if row else None

    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, tenant, scopes, created_at, revoked_at FROM api_keys"
                " ORDER BY created_at"
            ).fetchall()
        return [_row(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key by id; returns its record, or None when no live key has that id."""
        with self._lock:
            cur = self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
            if cur.rowcount == 0:
                return None
        return next(k for k in self.list() if k.id == key_id)


def _row(row: tuple[str, str, str, str, float, float | None]) -> ApiKey:
    key_id, name, tenant, scopes, created_at, revoked_at = row
    return ApiKey(
        id=key_id,
        name=name,
        tenant=tenant,
        scopes=[Scope(s) for s in scopes.split(",") if s],
        created_at=created_at,
        revoked_at=revoked_at,
    )
