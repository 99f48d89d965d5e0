"""Where the shared stores live: keys, usage and quotas, and the sessions' registry.

On PostgreSQL (`SANDGATE_STATE_DSN`, or else `SANDGATE_AUDIT_DSN` when that names PostgreSQL)
every node shares them: a key made by `sandgate keys create` on any host works on every node, a
quota counts what every node ran, and any API node finds the worker a session lives on.
Otherwise each is a SQLite file in the state directory, shared by one host's workers.
"""

from __future__ import annotations

from sandgate.audit.dsn import is_postgres
from sandgate.db.postgres import PostgresDatabase
from sandgate.db.sqlite import SqliteDatabase
from sandgate.keys import KeyStore, PostgresKeyStore, SqliteKeyStore
from sandgate.sessions.registry import SessionRegistry
from sandgate.settings import Settings
from sandgate.usage import PostgresUsageStore, SqliteUsageStore, UsageStore

__all__ = ["open_keys", "open_registry", "open_usage", "state_dsn"]


def state_dsn(settings: Settings) -> str | None:
    """The shared stores' PostgreSQL DSN; None: SQLite files in the state directory."""
    if settings.state_dsn:
        return settings.state_dsn
    audit = settings.audit_dsn
    return audit if audit and audit != "off" and is_postgres(audit) else None


def open_keys(settings: Settings) -> KeyStore:
    """The key store."""
    dsn = state_dsn(settings)
    return PostgresKeyStore(dsn) if dsn else SqliteKeyStore(settings.state_dir / "keys.db")


def open_usage(settings: Settings) -> UsageStore:
    """The usage store (quotas and the CPU breaker)."""
    dsn = state_dsn(settings)
    return PostgresUsageStore(dsn) if dsn else SqliteUsageStore(settings.state_dir / "usage.db")


def open_registry(settings: Settings) -> SessionRegistry:
    """The sessions' registry."""
    dsn = state_dsn(settings)
    if dsn:
        return SessionRegistry(PostgresDatabase(dsn, "sessions"))
    # NORMAL: a commit that only an OS crash could lose belongs to a session that the same
    # crash ended (its sandbox dies with the host), so each execute's use need not be fsynced.
    path = settings.state_dir / "sessions.db"
    return SessionRegistry(SqliteDatabase(path, "sessions", synchronous="NORMAL"))
