"""The host-wide cap on sandboxes running at once.

A slot is an exclusive `flock` on one of N files in the state directory, so the cap holds
across every worker process of the service on this host, and the kernel frees a slot when its
holder dies. Within one process an asyncio semaphore queues waiters, so only as many requests
as there are slots ever poll for a lock. A request that gets no slot within the wait is refused.
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

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        """Hold a slot; raises NoSlot after `wait_s` seconds without one."""
        deadline = time.monotonic() + self.wait_s
        try:
            await asyncio.wait_for(self._local.acquire(), max(self.wait_s, 0.001))
        except TimeoutError:
            raise NoSlot from None
        try:
            while (fd := self._try_lock()) is None:
                if time.monotonic() >= deadline:
                    raise NoSlot
                await asyncio.sleep(POLL_S)
            self.in_use += 1
            try:
                yield
            finally:
                self.in_use -= 1
                os.close(fd)  # closing the descriptor drops the flock
        finally:
            self._local.release()
