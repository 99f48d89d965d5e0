"""Moving bytes between a client and an origin under the byte caps and the idle timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sandbox.base import EgressAttempt

__all__ = ["Budget", "CapExceeded", "Cut", "IdleTimeout", "Meter", "pump", "relay", "send"]

T = TypeVar("T")
CHUNK = 256 * 1024


class Cut(Exception):
    """The connection is cut short; the message says why and goes into the attempt record."""


class CapExceeded(Cut):
    """A byte cap was reached; the connection is closed without forwarding the chunk."""


class IdleTimeout(Cut):
    """No byte moved either way for the idle timeout."""


class Budget:
    """Bytes all connections of one execution may still carry."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self.spent = False  # set once a chunk did not fit: the execution's egress is over

    @property
    def exhausted(self) -> bool:
        """True once the cap was reached or a chunk was refused for crossing it."""
        return self.spent or self.used >= self.cap


class Meter:
    """One connection's byte count, charged to its attempt record and the execution's budget."""

    def __init__(self, attempt: EgressAttempt, cap: int, budget: Budget, idle_s: float) -> None:
        self.attempt = attempt
        self.cap = cap
        self.budget = budget
        self.idle_s = idle_s
        self.used = 0
        self.last = asyncio.get_running_loop().time()

    def take(self, size: int, *, up: bool) -> None:
        """Charge `size` bytes about to be forwarded, or raise CapExceeded."""
        if self.used + size > self.cap:
            raise CapExceeded(f"per-connection byte cap ({self.cap} bytes) reached")
        if self.budget.used + size > self.budget.cap:
            self.budget.spent = True
            raise CapExceeded(f"per-execution byte cap ({self.budget.cap} bytes) reached")
        self.used += size
        self.budget.used += size
        if up:
            self.attempt.bytes_up += size
        else:
            self.attempt.bytes_down += size

    async def active(self, step: Callable[[], Awaitable[T]]) -> T:
        """Await `step`, raising IdleTimeout once nothing moved either way for `idle_s`."""
        loop = asyncio.get_running_loop()
        while True:
            remaining = self.idle_s - (loop.time() - self.last)
            if remaining <= 0:
                raise IdleTimeout(f"idle for {self.idle_s:g} s")
            try:
                async with asyncio.timeout(remaining):
                    result = await step()
            except TimeoutError:
                continue  # the other direction may have moved meanwhile; re-check
            self.last = loop.time()
            return result


async def send(writer: asyncio.StreamWriter, data: bytes, meter: Meter, *, up: bool) -> None:
    """Charge and write one chunk, waiting (idle-bounded) while the peer is slow to read."""
    meter.take(len(data), up=up)
    writer.write(data)
    await meter.active(writer.drain)


async def pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, meter: Meter, *, up: bool
) -> None:
    """Copy until end of stream, then half-close the other side."""
    while True:
        data = await meter.active(lambda: reader.read(CHUNK))
        if not data:
            break
        await send(writer, data, meter, up=up)
    if writer.can_write_eof() and not writer.is_closing():
        with contextlib.suppress(OSError):
            writer.write_eof()


async def relay(up: Awaitable[None], down: Awaitable[None]) -> str | None:
    """Run both directions; return why the connection was cut short, or None if it ended."""
    tasks = [asyncio.ensure_future(up), asyncio.ensure_future(down)]
    try:
        pending: set[asyncio.Future[None]] = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                exc = task.exception()
                if isinstance(exc, Cut):
                    return str(exc)
                if isinstance(exc, ConnectionError | OSError):
                    return None  # a peer reset or went away: the normal end of many connections
                if exc is not None:
                    raise exc
        return None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
