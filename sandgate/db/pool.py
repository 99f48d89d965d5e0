"""A few idle database connections, lent to whichever thread asks next (the audit stores' and
the shared stores' pools).

Per-thread connections would leak: a server's worker threads come and go (anyio retires idle
ones), and each would leave an open file or server connection behind. A connection that saw
an exception is closed rather than lent again, so a broken one never comes back.
"""

from __future__ import annotations

import select
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar

__all__ = ["ConnectionPool", "alive"]

C = TypeVar("C")


class ConnectionPool(Generic[C]):
    """Lends connections made by `connect`, keeping up to `max_idle` for reuse."""

    def __init__(
        self,
        connect: Callable[[], C],
        close: Callable[[C], None],
        usable: Callable[[C], bool] = lambda _conn: True,
        max_idle: int = 8,
        closed_error: Callable[[], Exception] = lambda: RuntimeError("the store is closed"),
    ) -> None:
        self._connect = connect
        self._close = close
        self._usable = usable
        self._max_idle = max_idle
        self._closed_error = closed_error
        self._idle: list[C] = []
        self._lock = threading.Lock()
        self._closed = False

    def _take(self) -> C:
        while True:
            with self._lock:
                if self._closed:
                    raise self._closed_error()
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect()
            if self._usable(conn):
                return conn
            self._close(conn)

    def _give(self, conn: C) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        self._close(conn)

    @contextmanager
    def connection(self) -> Iterator[C]:
        """A connection for the block; returned to the pool after it, closed on an exception."""
        conn = self._take()
        try:
            yield conn
        except BaseException:
            self._close(conn)
            raise
        self._give(conn)

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    @property
    def idle(self) -> int:
        """How many connections wait to be lent."""
        return len(self._idle)

    def discard_idle(self) -> None:
        """Close every idle connection (after a server restart they are all dead)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            self._close(conn)

    def close(self) -> None:
        """Close the idle connections; those lent out are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            self._close(conn)


class _Socketed(Protocol):
    """A database connection over one socket (psycopg's)."""

    @property
    def closed(self) -> bool: ...

    @property
    def broken(self) -> bool: ...

    def fileno(self) -> int: ...


def alive(conn: _Socketed) -> bool:
    """Whether an idle connection is still good, without a round trip to the server.

    An idle connection has nothing to read: if its socket is readable, the server closed it
    (a restart, an idle timeout) or sent something unexpected; either way it is not lent.
    """
    if conn.closed or conn.broken:
        return False
    try:
        poller = select.poll()  # not select.select: it fails on descriptors past 1023
        poller.register(conn.fileno(), select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False
