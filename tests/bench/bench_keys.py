"""What `last_used_at` costs: a key lookup that notes its use in memory (flushed in one batch
every few seconds, as the service does) against one that writes it on every request."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from sandgate.keys import SqliteKeyStore

CALLS = 5000


def run() -> None:
    """Print µs per authenticated request for each way of keeping `last_used_at`."""
    store = SqliteKeyStore(Path(tempfile.mkdtemp(prefix="sandgate-bench-keys-")) / "keys.db")
    secrets = [store.create(f"agent-{i}")[0] for i in range(20)]

    def lookups(write_each: bool) -> float:
        started = time.perf_counter()
        for i in range(CALLS):
            key = store.lookup(secrets[i % len(secrets)])
            assert key is not None
            store.touch(key.id)
            if write_each:
                store.flush_last_used()  # one UPDATE and commit per request
        store.flush_last_used()
        return (time.perf_counter() - started) / CALLS * 1e6

    bare = lookups(write_each=False)
    each = lookups(write_each=True)
    print(f"  lookup + last use noted, batched: {bare:7.1f} µs a request")
    print(f"  lookup + last use written each time: {each:7.1f} µs a request ({each / bare:.0f}x)")
    store.close()
