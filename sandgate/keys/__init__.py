"""API keys: created once and shown once, stored only as SHA-256 hashes, never logged.

`base.KeyStore` is the contract (expiry, rotation, `last_used_at`); `sql.SqlKeyStore` is its
implementation, on SQLite in the state directory (`SqliteKeyStore`) or on PostgreSQL, shared by
every node (`PostgresKeyStore`).
"""

from __future__ import annotations

from sandgate.keys.base import (
    DEFAULT_LIFETIME_S,
    KEY_PREFIX,
    ApiKey,
    KeyStore,
    Scope,
)
from sandgate.keys.sql import PostgresKeyStore, SqliteKeyStore

__all__ = [
    "DEFAULT_LIFETIME_S",
    "KEY_PREFIX",
    "ApiKey",
    "KeyStore",
    "Scope",
    "PostgresKeyStore",
    "SqliteKeyStore",
]
