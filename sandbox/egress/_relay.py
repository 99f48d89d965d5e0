"""Moving bytes between a client and an origin under the byte caps and the idle timeout.

Sockets are driven directly with the loop's `sock_recv_into`/`sock_sendall` into one reused
buffer per direction: no stream buffers, so a chunk is copied only by the kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sandbox.base import EgressAttempt

__all__ = [
    "Budget",
    "CHUNK",
    "CapExceeded",
    "Cut",
    "Endpoint",
    "IdleTimeout",
    "Meter",
    "pump",
    "relay",
    "send",
]

T = TypeVar("T")
CHUNK = 256 * 1024


class Cut(Exception):
    """The connection is cut short; the message says why and goes into the attempt record."""


class CapExceeded(Cut):
    """A byte cap was reached; the connection is closed without forwarding the chunk."""


class IdleTimeout(Cut):
    """No byte moved either way for the idle timeout (or a peer stopped reading)."""


class Endpoint:
    """A non-blocking socket driven by the running loop."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            # The default Unix-socket buffer halved throughput; a fixed 1 MiB also caps what
            # TCP autotuning (up to 6 MiB) would hold for a peer that stops reading.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, 1 << 20)
        self.sock = sock
        self.loop = asyncio.get_running_loop()

    async def recv(self, size: int = 65536) -> bytes:
        """Up to `size` bytes; b"" at end of stream."""
        return await self.loop.sock_recv(self.sock, size)

    async def recv_into(self, buffer: bytearray) -> int:
        """Read into `buffer`; 0 at end of stream."""
        return await self.loop.sock_recv_into(self.sock, buffer)

    async def sendall(self, data: bytes | memoryview) -> None:
        """Send every byte."""
        await self.loop.sock_sendall(self.sock, data)

    def shutdown_write(self) -> None:
        """Signal end of stream to the peer, if it is still there."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.sock.close()


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

    async def read(self, step: Callable[[], Awaitable[T]]) -> T:
        """Await a read, raising IdleTimeout once nothing moved either way for `idle_s`."""
        loop = asyncio.get_running_loop()
        while True:
            remaining = self.idle_s - (loop.time() - self.last)
            if remaining <= 0:
                raise IdleTimeout(f"idle for {self.idle_s:g} s")
            try:
                async with asyncio.timeout(remaining):
                    result = await step()
            except TimeoutError:
                continue  # a cancelled read consumed nothing; the other side may have moved
            self.last = loop.time()
            return result

    async def write(self, dst: Endpoint, data: bytes | memoryview) -> None:
        """Send all of `data`; a peer that reads nothing for `idle_s` is given up on."""
        try:
            async with asyncio.timeout(self.idle_s):
                await dst.sendall(data)
        except TimeoutError:
            raise IdleTimeout(f"peer read nothing for {self.idle_s:g} s") from None
        self.last = asyncio.get_running_loop().time()


async def send(dst: Endpoint, data: bytes, meter: Meter, *, up: bool) -> None:
    """Charge and send one chunk."""
    meter.take(len(data), up=up)
    await meter.write(dst, data)


async def pump(src: Endpoint, dst: Endpoint, meter: Meter, *, up: bool) -> None:
    """Copy until end of stream, then half-close the other side."""
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    while True:
        size = await meter.read(lambda: src.recv_into(buffer))
        if not size:
            break
        meter.take(size, up=up)
        await meter.write(dst, view[:size])
    dst.shutdown_write()


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
                if isinstance(exc, OSError):
                    return None  # a peer reset or went away: the normal end of many connections
                if exc is not None:
                    raise exc
        return None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
