"""The key store in SQL: SQLite (WAL) in the state directory for one host, or PostgreSQL, where
every node sees the same keys. The statements are the same on both (`sandgate.db`).

Lookups compare hashes through the primary-key index; the key itself never touches the
database, the logs or the audit log (records carry the key's id and name). A database from
before expiries existed gains the columns, and its keys an expiry of 90 days from then.
Seeding and rotation are transactions that run one at a time across every node.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import structlog

from sandgate.db.base import Database, Statements
from sandgate.db.postgres import PostgresDatabase
from sandgate.db.sqlite import SqliteDatabase
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

__all__ = ["PostgresKeyStore", "SqlKeyStore", "SqliteKeyStore"]

log = structlog.get_logger(__name__)

_COLUMNS = "id, name, tenant, scopes, created_at, revoked_at, expires_at, last_used_at, rotated_to"
_TIME = "DOUBLE PRECISION"  # REAL to SQLite; in PostgreSQL, REAL would be 4 bytes
_ADDED = {"expires_at": _TIME, "last_used_at": _TIME, "rotated_to": "TEXT"}
_TABLE = (
    "CREATE TABLE IF NOT EXISTS api_keys (digest TEXT PRIMARY KEY, id TEXT UNIQUE,"
    f" name TEXT NOT NULL, tenant TEXT NOT NULL, scopes TEXT NOT NULL,"
    f" created_at {_TIME} NOT NULL, revoked_at {_TIME}, expires_at {_TIME},"
    f" last_used_at {_TIME}, rotated_to TEXT)"
)
_LOCK = "api_keys"


class SqlKeyStore(KeyStore):
    """The `api_keys` table: one row per key, by the digest of its secret."""

    def __init__(self, db: Database) -> None:
        super().__init__()
        self._db = db
        db.create([_TABLE])
        self._migrate()

    def _migrate(self) -> None:
        """Add the columns an older database lacks; its keys get the default lifetime."""
        missing = [name for name in _ADDED if name not in self._db.columns("api_keys")]
        if not missing:
            return
        with self._db.transaction(lock=_LOCK) as tx:
            for name in (n for n in _ADDED if n not in self._db.columns("api_keys", tx)):
                tx.execute(f"ALTER TABLE api_keys ADD COLUMN {name} {_ADDED[name]}")
            tx.execute(
                "UPDATE api_keys SET expires_at = ? WHERE expires_at IS NULL",
                (time.time() + DEFAULT_LIFETIME_S,),
            )
        log.warning("keys.migrated", added=missing, expiry_days=DEFAULT_LIFETIME_S // 86_400)

    def close(self) -> None:
        self.flush_last_used()
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
        with self._db.transaction() as tx:
            return secret, _insert(tx, secret, name, tenant, scopes, expires_at)

    def seed(self, secret: str, expires_at: float | None = None) -> None:
        """One transaction, one seeder at a time: every worker (and node) of a new service
        seeds at once, and a check-then-insert let two of them insert the same key."""
        hashed = digest(secret)
        with self._db.transaction(lock=_LOCK) as tx:
            tx.execute(
                "DELETE FROM api_keys WHERE (name = ? OR digest = ?)"
                " AND NOT (name = ? AND digest = ? AND revoked_at IS NULL)",
                (ENV_KEY_NAME, hashed, ENV_KEY_NAME, hashed),
            )
            if tx.execute("SELECT id FROM api_keys WHERE digest = ?", (hashed,)).one() is None:
                _insert(tx, secret, ENV_KEY_NAME, "default", (Scope.ADMIN,), expires_at)

    def lookup(self, secret: str) -> ApiKey | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM api_keys WHERE digest = ? AND revoked_at IS NULL",
            (digest(secret),),
        ).one()
        return _row(row) if row else None

    def get(self, key_id: str) -> ApiKey | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).one()
        return _row(row) if row else None

    def list(self) -> list[ApiKey]:
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at").rows
        return [_row(r) for r in rows]

    def revoke(self, key_id: str) -> ApiKey | None:
        changed = self._db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), key_id),
        ).count
        return self.get(key_id) if changed else None

    def rotate(
        self, key_id: str, *, expires_at: float, grace_until: float
    ) -> tuple[str, ApiKey, ApiKey] | None:
        secret = new_secret()
        with self._db.transaction(lock=_LOCK) as tx:
            row = tx.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE id = ? AND revoked_at IS NULL",
                (key_id,),
            ).one()
            if row is None:
                return None  # nothing written: the empty transaction commits
            old = _row(row)
            new = _insert(tx, secret, old.name, old.tenant, tuple(old.scopes), expires_at)
            tx.execute(
                "UPDATE api_keys SET rotated_to = ?, expires_at = CASE WHEN expires_at IS NULL"
                " OR expires_at > ? THEN ? ELSE expires_at END WHERE id = ?",
                (new.id, grace_until, grace_until, key_id),
            )
        old_now = self.get(key_id)
        assert old_now is not None
        return secret, new, old_now

    def _write_last_used(self, used: dict[str, float]) -> None:
        self._db.executemany(  # one commit for the whole batch
            "UPDATE api_keys SET last_used_at = ? WHERE id = ?"
            " AND (last_used_at IS NULL OR last_used_at < ?)",
            [(at, key_id, at) for key_id, at in used.items()],
        )


class SqliteKeyStore(SqlKeyStore):
    """`keys.db` in the state directory, shared by one host's workers."""

    def __init__(self, path: Path) -> None:
        super().__init__(SqliteDatabase(path, "keys"))


class PostgresKeyStore(SqlKeyStore):
    """The `api_keys` table of the DSN's database, shared by every node."""

    def __init__(self, dsn: str) -> None:
        super().__init__(PostgresDatabase(dsn, "keys"))


def _insert(
    tx: Statements,
    secret: str,
    name: str,
    tenant: str,
    scopes: tuple[Scope, ...],
    expires_at: float | None,
) -> ApiKey:
    """Add a key row in the transaction."""
    now = time.time()
    record = ApiKey(
        id=secrets.token_hex(8),
        name=name,
        tenant=tenant,
        scopes=list(scopes),
        created_at=now,
        expires_at=expires_at if expires_at is not None else now + DEFAULT_LIFETIME_S,
    )
    tx.execute(
        f"INSERT INTO api_keys (digest, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, NULL, NULL)",
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


def _row(
    row: tuple[object, ...],
) -> ApiKey:
    key_id, name, tenant, scopes, created_at, revoked_at, expires_at, last_used, rotated = row
    return ApiKey.model_validate(
        {
            "id": key_id,
            "name": name,
            "tenant": tenant,
            "scopes": [Scope(s) for s in str(scopes).split(",") if s],
            "created_at": created_at,
            "revoked_at": revoked_at,
            "expires_at": expires_at,
            "last_used_at": last_used,
            "rotated_to": rotated,
        }
    )
