"""The service's small SQLite stores in the state directory (keys, usage, sessions): opened the
same way, written in explicit transactions.

Every worker process of a host opens the same files: the busy wait is set before switching to
WAL, because a second worker opening a new database meets the first one's lock.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

__all__ = ["open_shared", "transaction"]


def open_shared(path: Path) -> sqlite3.Connection:
    """A connection (autocommit, any thread) to the WAL database at `path`, made if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA busy_timeout=5000")
    db.execute("PRAGMA journal_mode=WAL")
    return db


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One write transaction (`BEGIN IMMEDIATE`): committed, or rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
