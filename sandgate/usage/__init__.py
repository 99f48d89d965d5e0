"""What callers used: daily counters per key and tenant, and the host's CPU-seconds per minute.

`base.UsageStore` is the contract; `sqlite.SqliteUsageStore` (in the state directory, shared by
the workers of one host) is the first implementation.
"""

from __future__ import annotations

from sandgate.usage.base import Usage, UsageStore
from sandgate.usage.sqlite import SqliteUsageStore

__all__ = ["SqliteUsageStore", "Usage", "UsageStore"]
