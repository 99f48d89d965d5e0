"""The key store in SQLite (WAL) in the state directory; safe across threads and processes.

Lookups compare hashes through the primary-key index; the key itself never touches the
database, the logs or the audit log (records carry the key's id and name). A database from
before expiries existed gains the columns, and its keys an expiry of 90 days from then.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import structlog

from sandgate.keys.base import (
    DEFAULT_LIFETIME_S,
    DEFAULT_SCOPES,
    ENV_KEY_NAME,
    ApiKey,
    KeyStore,
    Scope,
    digest,
    new_secret,
)
from sandgate.sqlitedb import open_shared, transaction

__all__ = ["SqliteKeyStore"]

log = structlog.get_logger(__name__)

_COLUMNS = "id, name, tenant, scopes, created_at, revoked_at, expires_at, last_used_at, rotated_to"
_ADDED = {"expires_at": "REAL", "last_used_at": "REAL", "rotated_to": "TEXT"}


class SqliteKeyStore(KeyStore):
    """`keys.db`: one row per key, by the digest of its secret."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._db = open_shared(path)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS api_keys (digest TEXT PRIMARY KEY, id TEXT UNIQUE,"
                " name TEXT NOT NULL, tenant TEXT NOT NULL, scopes TEXT NOT NULL,"
                " created_at REAL NOT NULL, revoked_at REAL, expires_at REAL,"
                " last_used_at REAL, rotated_to TEXT)"
            )
            self._migrate()

    def _migrate(self) -> None:
        """Add the columns an older database lacks; its keys get the default lifetime."""
        have = {row[1] for row in self._db.execute("PRAGMA table_info(api_keys)")}
        missing = [name for name in _ADDED if name not in have]
        if not missing:
            return
        with transaction(self._db) as db:
            have = {row[1] for row in db.execute("PRAGMA table_info(api_keys)")}
            for name in (n for n in _ADDED if n not in have):
                db.execute(f"ALTER TABLE api_keys ADD COLUMN {name} {_ADDED[name]}")
            db.execute(
                "UPDATE api_keys SET expires_at = ? WHERE expires_at IS NULL",
                (time.time() + DEFAULT_LIFETIME_S,),
            )
        log.warning("keys.migrated", added=missing, expiry_days=DEFAULT_LIFETIME_S // 86_400)

    def close(self) -> None:
        self.flush_last_used()
        with self._lock:
            self._db.close()

    def create(
        self,
        name: str,
        *,
        tenant: str = "default",
        scopes: tuple[Scope, ...] = DEFAULT_SCOPES,
        expires_at: float | None = None,
    ) -> tuple[str, ApiKey]:
        secret = new_secret()
        with self._lock:
            return secret, self._insert(secret, name, tenant, scopes, expires_at)

    def _insert(
        self,
        secret: str,
        name: str,
        tenant: str,
        scopes: tuple[Scope, ...],
        expires_at: float | None,
        verb: str = "INSERT",
    ) -> ApiKey:
        """Add a key row; the caller holds `_lock`."""
        now = time.time()
        record = ApiKey(
            id=secrets.token_hex(8),
            name=name,
            tenant=tenant,
            scopes=list(scopes),
            created_at=now,
            expires_at=expires_at if expires_at is not None else now + DEFAULT_LIFETIME_S,
        )
        self._db.execute(
            f"{verb} INTO api_keys"
            f" (digest, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, NULL, NULL)",
            (
                digest(secret),
                record.id,
                name,
                tenant,
                ",".join(scopes),
                record.created_at,
                record.expires_at,
            ),
        )
        return record

    def seed(self, secret: str, expires_at: float | None = None) -> None:
        """One transaction: every worker of a new service seeds at once, and a
        check-then-insert let two of them insert the same key (the loser's start failed)."""
        hashed = digest(secret)
        with self._lock, transaction(self._db) as db:
            db.execute(
                "DELETE FROM api_keys WHERE (name = ? OR digest = ?)"
                " AND NOT (name = ? AND digest = ? AND revoked_at IS NULL)",
                (ENV_KEY_NAME, hashed, ENV_KEY_NAME, hashed),
            )
            self._insert(
                secret, ENV_KEY_NAME, "default", (Scope.ADMIN,), expires_at, "INSERT OR IGNORE"
            )

    def lookup(self, secret: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE digest = ? AND revoked_at IS NULL",
                (digest(secret),),
            ).fetchone()
        return _row(row) if row else None

    def get(self, key_id: str) -> ApiKey | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        return _row(row) if row else None

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at"
            ).fetchall()
        return [_row(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey | None:
        with self._lock:
            cur = self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
            if cur.rowcount == 0:
                return None
        return self.get(key_id)

    def rotate(
        self, key_id: str, *, expires_at: float, grace_until: float
    ) -> tuple[str, ApiKey, ApiKey] | None:
        secret = new_secret()
        with self._lock, transaction(self._db) as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE id = ? AND revoked_at IS NULL",
                (key_id,),
            ).fetchone()
            if row is None:
                return None  # nothing written: the empty transaction commits
            old = _row(row)
            new = self._insert(secret, old.name, old.tenant, tuple(old.scopes), expires_at)
            db.execute(
                "UPDATE api_keys SET rotated_to = ?,"
                " expires_at = MIN(COALESCE(expires_at, ?), ?) WHERE id = ?",
                (new.id, grace_until, grace_until, key_id),
            )
        old_now = self.get(key_id)
        assert old_now is not None
        return secret, new, old_now

    def _write_last_used(self, used: dict[str, float]) -> None:
        with self._lock, transaction(self._db) as db:  # one commit for the whole batch
            db.executemany(
                "UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
                [(at, key_id) for key_id, at in used.items()],
            )


def _row(
    row: tuple[str, str, str, str, float, float | None, float | None, float | None, str | None],
) -> ApiKey:
    key_id, name, tenant, scopes, created_at, revoked_at, expires_at, last_used, rotated = row
    return ApiKey(
        id=key_id,
        name=name,
        tenant=tenant,
        scopes=[Scope(s) for s in scopes.split(",") if s],
        created_at=created_at,
        revoked_at=revoked_at,
        expires_at=expires_at,
        last_used_at=last_used,
        rotated_to=rotated,
    )
