"""API keys: created once and shown once, stored only as SHA-256 hashes, never logged.

`base.KeyStore` is the contract (expiry, rotation, `last_used_at`); `sqlite.SqliteKeyStore`
(in the state directory) is the first implementation.
"""

from __future__ import annotations

from sandgate.keys.base import (
    DEFAULT_LIFETIME_S,
    KEY_PREFIX,
    ApiKey,
    KeyStore,
    Scope,
)
from sandgate.keys.sqlite import SqliteKeyStore

__all__ = ["DEFAULT_LIFETIME_S", "KEY_PREFIX", "ApiKey", "KeyStore", "Scope", "SqliteKeyStore"]
