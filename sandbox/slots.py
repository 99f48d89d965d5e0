"""The host-wide cap on sandboxes running at once, shared by executions and the pool's refill.

A slot is an exclusive `flock` on one of N files in the state directory, so the cap holds
across every worker process of the service on this host, and the kernel frees a slot when its
holder dies. Within one process an asyncio semaphore queues waiters, so only as many requests
as there are slots ever poll for a lock. A request that gets no slot within the wait is refused.

Starting a sandbox ahead (the warm pool's refill) takes a slot too, but only `background()`:
never while a request of this process waits for one or has just asked, and a request that finds
every slot taken cancels such a holder (its half-started sandbox is thrown away) rather than
wait for it. Another worker's refill is not seen; a request there waits at most one sandbox
start-up for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

__all__ = ["NoSlot", "SandboxSlots"]

POLL_S = 0.01
BACKGROUND_POLL_S = 0.05
# A background holder starts only once no request has asked for a slot for this long: under a
# steady stream of requests a refill would mostly be started only to be thrown away.
QUIET_S = 0.1


class NoSlot(Exception):
    """No slot became free within the wait."""


class SandboxSlots:
    """N lock files; `acquire()` holds one for the duration of an execution."""

    def __init__(self, directory: Path, count: int, wait_s: float) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.count = count
        self.wait_s = wait_s
        self._paths = [directory / f"slot-{i}.lock" for i in range(count)]
        self._local = asyncio.Semaphore(count)
        self._waiting = 0
        self._last_asked = 0.0  # monotonic time of the latest request for a slot
        self._background: set[asyncio.Task[object]] = set()
        self.in_use = 0

    def _try_lock(self) -> int | None:
        for path in self._paths:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        return None

    def _preempt(self) -> None:
        """Cancel one background holder, so that its slot comes free for a request."""
        for task in self._background:
            if not task.cancelling():
                task.cancel()
                return

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        """Hold a slot; raises NoSlot after `wait_s` seconds without one."""
        self._last_asked = time.monotonic()
        deadline = self._last_asked + self.wait_s
        self._waiting += 1
        try:
            if self._local.locked():
                self._preempt()
            try:
                await asyncio.wait_for(self._local.acquire(), max(self.wait_s, 0.001))
            except TimeoutError:
                raise NoSlot from None
            try:
                while (fd := self._try_lock()) is None:
                    if time.monotonic() >= deadline:
                        raise NoSlot
                    self._preempt()
                    await asyncio.sleep(POLL_S)
            except BaseException:
                self._local.release()
                raise
        finally:
            self._waiting -= 1
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            os.close(fd)  # closing the descriptor drops the flock
            self._local.release()

    @contextlib.asynccontextmanager
    async def background(self) -> AsyncIterator[None]:
        """Hold a slot for work that can wait and can be thrown away: taken only when one is
        free, no request here waits and none asked for QUIET_S; the holding task is cancelled
        if a request needs it."""
        while True:
            quiet = time.monotonic() - self._last_asked >= QUIET_S
            if quiet and not self._waiting and not self._local.locked():
                await self._local.acquire()  # free: returns at once
                if (fd := self._try_lock()) is not None:
                    break
                self._local.release()
            await asyncio.sleep(BACKGROUND_POLL_S)
        task = asyncio.current_task()
        assert task is not None
        self._background.add(task)
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1
            self._background.discard(task)
            os.close(fd)
            self._local.release()
