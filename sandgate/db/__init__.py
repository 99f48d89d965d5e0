"""The databases of the shared stores (keys, usage, the sessions' registry): `base.Database`, in
SQLite per host (`sqlite`) or PostgreSQL for several hosts (`postgres`), and the connection pool
(`pool`) they and the audit stores lend connections from. `sandgate.stores` opens them."""

from __future__ import annotations

__all__: list[str] = []
