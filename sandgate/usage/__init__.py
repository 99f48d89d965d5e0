"""What callers used: daily counters per key and tenant, and the host's CPU-seconds per minute.

`base.UsageStore` is the contract; `sql.SqlUsageStore` implements it on SQLite in the state
directory, shared by the workers of one host (`SqliteUsageStore`), or on PostgreSQL, shared by
every node (`PostgresUsageStore`).
"""

from __future__ import annotations

from sandgate.usage.base import Usage, UsageStore
from sandgate.usage.sql import PostgresUsageStore, SqliteUsageStore

__all__ = ["PostgresUsageStore", "SqliteUsageStore", "Usage", "UsageStore"]
