"""Choosing a store from one string, and the environment variables that name it.

DSN forms:

    sqlite:///var/lib/sandgate/audit.db    absolute path (like a file:// URL)
    sqlite:relative/audit.db                 relative to the working directory
    /var/lib/sandgate/audit.db               a bare path is a SQLite file too
    postgresql://user:pw@host:5432/db?options=-csearch_path%3Daudit   (or postgres://)
    host=... dbname=...                      a libpq key=value string

Environment:

    SANDGATE_AUDIT_DSN        the store; default sqlite under SANDGATE_STATE_DIR/audit.db
    SANDGATE_STATE_DIR        the service's state directory (default `.state`)
    SANDGATE_AUDIT_HMAC_KEY   the checkpoint key (16+ bytes); never stored in the database.
                              Unset: the key the service keeps in SANDGATE_STATE_DIR/audit_hmac_key
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sandgate.audit.base import AuditStore
from sandgate.audit.postgres import PostgresAuditStore
from sandgate.audit.sqlite import SQLiteAuditStore

__all__ = [
    "DSN_ENV",
    "HMAC_KEY_ENV",
    "KEY_FILE",
    "default_dsn",
    "hmac_key_from_env",
    "is_postgres",
    "open_store",
    "redacted_dsn",
    "sqlite_path",
]

DSN_ENV = "SANDGATE_AUDIT_DSN"
HMAC_KEY_ENV = "SANDGATE_AUDIT_HMAC_KEY"
KEY_FILE = "audit_hmac_key"
_STATE_ENV = "SANDGATE_STATE_DIR"


def default_dsn(environ: Mapping[str, str] | None = None) -> str:
    """SANDGATE_AUDIT_DSN if set, else the SQLite file in the state directory."""
    env = os.environ if environ is None else environ
    if env.get(DSN_ENV):
        return env[DSN_ENV]
    state = Path(env.get(_STATE_ENV) or ".state").expanduser().resolve()
    return f"sqlite://{state / 'audit.db'}"


def hmac_key_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The checkpoint HMAC key: SANDGATE_AUDIT_HMAC_KEY (UTF-8 bytes), else the key the service
    made for itself in the state directory (`audit_hmac_key`), else None."""
    env = os.environ if environ is None else environ
    value = env.get(HMAC_KEY_ENV)
    if value:
        return value.encode()
    made = Path(env.get(_STATE_ENV) or ".state").expanduser().resolve() / KEY_FILE
    return made.read_text().strip().encode() if made.is_file() else None


def is_postgres(dsn: str) -> bool:
    """Whether a DSN names PostgreSQL (a URL or a libpq key=value string)."""
    return dsn.startswith(("postgresql://", "postgres://")) or (
        "=" in dsn and not dsn.startswith(("sqlite:", "/", "."))
    )


def sqlite_path(dsn: str) -> Path:
    """The file a SQLite DSN names."""
    if dsn.startswith("sqlite://"):
        rest = dsn[len("sqlite://") :]
        if not rest.startswith("/"):
            raise ValueError("a sqlite:// DSN needs an absolute path: sqlite:///path/to/audit.db")
        return Path(rest)
    if dsn.startswith("sqlite:"):
        return Path(dsn[len("sqlite:") :])
    return Path(dsn)


def open_store(dsn: str, **options: Any) -> AuditStore:
    """Open the store a DSN names; `options` go to the store (hmac_key, checkpoint_every...).

    Raises `AuditUnavailable` when the database cannot be reached or opened.
    """
    if not dsn:
        raise ValueError("empty audit DSN")
    if is_postgres(dsn):
        return PostgresAuditStore(dsn, **options)
    return SQLiteAuditStore(sqlite_path(dsn), **options)


def redacted_dsn(dsn: str) -> str:
    """The DSN with any password replaced, for messages and logs."""
    if not is_postgres(dsn):
        return dsn
    try:
        params = conninfo_to_dict(dsn)
    except Exception:  # a DSN psycopg cannot parse: say nothing of it
        return "<unparsable DSN>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)
