"""The per-execution allowlisting egress proxy, listening on a Unix socket.

For every connection: read one request head (plain HTTP in absolute form, or CONNECT), check
the host and port with the injected filter (deny on no match or on any error), resolve the name
once, refuse loopback/private/link-local/CGNAT/multicast/reserved/metadata addresses, connect
to an address that passed, and relay under the byte caps and the idle timeout. A private or
loopback address passes only when `allow_private` is on AND an allow entry names that exact
address and port; cloud-metadata addresses never pass. Every attempt becomes an
`EgressAttempt`, handed to `on_attempt` once it is finished.

Plain HTTP carries one request per client connection (`Connection: close` both ways): a second,
pipelined request on the same connection is never read, so it cannot skip the checks.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import socket
from pathlib import Path
from typing import Self

import structlog

from sandbox.base import EgressAttempt
from sandbox.egress._dial import Dialer
from sandbox.egress._http import ClientGone, ProxyRefusal, read_head, refusal
from sandbox.egress._relay import Budget, Cut, Endpoint, Meter, relay
from sandbox.egress._session import Session
from sandbox.egress.base import (
    AttemptCallback,
    EgressCaps,
    EgressFilter,
    Resolver,
)
from sandbox.egress.resolver import SystemResolver

__all__ = ["EgressProxy"]

log = structlog.get_logger(__name__)


class EgressProxy:
    """One execution's egress proxy; `start()` it on a socket path, `aclose()` it when done."""

    def __init__(
        self,
        egress_filter: EgressFilter,
        *,
        allow_private: bool = False,
        caps: EgressCaps | None = None,
        resolver: Resolver | None = None,
        on_attempt: AttemptCallback | None = None,
    ) -> None:
        self.filter = egress_filter
        self.allow_private = allow_private
        self.caps = caps or EgressCaps()
        self.resolver: Resolver = resolver or SystemResolver()
        self.on_attempt = on_attempt
        self.refused_connections = 0
        self._budget = Budget(self.caps.bytes_per_execution)
        self._dialer = Dialer(egress_filter, self.resolver, self.caps, allow_private=allow_private)
        self._attempts: list[EgressAttempt] = []
        self._accepted = 0
        self._open_count = 0
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._socket_path: Path | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._callbacks: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def attempts(self) -> list[EgressAttempt]:
        """Every attempt so far, in the order they started (open ones still counting bytes)."""
        return list(self._attempts)

    @property
    def bytes_total(self) -> int:
        """Bytes up plus down over all connections so far."""
        return self._budget.used

    @property
    def socket_path(self) -> Path | None:
        """Where the proxy listens, once started."""
        return self._socket_path

    async def start(self, socket_path: str | os.PathLike[str], *, mode: int = 0o600) -> None:
        """Listen on a new Unix socket at `socket_path` (which must not exist) with `mode`."""
        if self._listener is not None or self._closed:
            raise RuntimeError("an EgressProxy starts once")
        path = Path(socket_path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # A socket path is limited to 107 bytes; bind through a descriptor of its directory
        # (/proc/self/fd/N/name) so a deep state directory still works.
        directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            listener.bind(f"/proc/self/fd/{directory}/{path.name}")
        except BaseException:
            listener.close()
            raise
        finally:
            os.close(directory)
        self._socket_path = path
        try:
            os.chmod(path, mode)
            listener.listen(128)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            path.unlink(missing_ok=True)
            raise
        self._listener = listener
        self._acceptor = asyncio.create_task(self._accept_forever(listener))
        log.debug("egress.proxy_started", socket=str(path))

    async def aclose(self) -> None:
        """Stop listening, close every connection, remove the socket; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._acceptor is not None:
            self._acceptor.cancel()
            await asyncio.gather(self._acceptor, return_exceptions=True)
        if self._listener is not None:
            self._listener.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await asyncio.gather(*self._callbacks, return_exceptions=True)
        if self._socket_path is not None and self._listener is not None:
            self._socket_path.unlink(missing_ok=True)
        log.debug("egress.proxy_closed", attempts=len(self._attempts))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _record(self, host: str, port: int, reason: str) -> EgressAttempt:
        attempt = EgressAttempt(host=host, port=port, decision="deny", reason=reason)
        self._attempts.append(attempt)
        return attempt

    def _finish(self, attempt: EgressAttempt) -> None:
        """Hand a finished attempt to the callback; a failing callback never breaks the proxy."""
        log.debug("egress.attempt", host=attempt.host, port=attempt.port, decision=attempt.decision)
        if self.on_attempt is None:
            return
        try:
            result = self.on_attempt(attempt)
        except Exception as exc:
            log.warning("egress.callback_failed", error=type(exc).__name__)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._await_callback(result))
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    @staticmethod
    async def _await_callback(result: object) -> None:
        try:
            await result  # type: ignore[misc]
        except Exception as exc:
            log.warning("egress.callback_failed", error=type(exc).__name__)

    async def _open(self, host: str, port: int, attempt: EgressAttempt) -> socket.socket:
        """Check, then resolve once and connect; raise ProxyRefusal saying why not."""
        verdict = self._dialer.check(host, port)
        if self._budget.exhausted:
            reason = f"per-execution byte cap ({self._budget.cap} bytes) already reached"
            raise ProxyRefusal(403, "byte-limit", reason)
        sock, address = await self._dialer.dial(host, port)
        attempt.decision = "allow"
        attempt.address = str(address)
        attempt.reason = verdict.reason
        return sock

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError as exc:  # EMFILE and the like: keep serving what is open
                log.warning("egress.accept_failed", error=type(exc).__name__)
                await asyncio.sleep(0.05)
                continue
            task = asyncio.create_task(self._handle(conn))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _handle(self, conn: socket.socket) -> None:
        client = Endpoint(conn)
        try:
            if self._accepted >= self.caps.connections_per_execution:
                self._refuse_over_cap(conn)
                return
            self._accepted += 1
            if self._open_count >= self.caps.open_connections:
                reason = f"{self._open_count} connections already open, the most allowed at once"
                self._finish(self._record("", 0, reason))
                _send_now(conn, refusal(403, "connection-limit", reason))
                return
            self._open_count += 1
            try:
                await self._serve(client)
            finally:
                self._open_count -= 1
        finally:
            client.close()

    def _refuse_over_cap(self, conn: socket.socket) -> None:
        cap = self.caps.connections_per_execution
        reason = f"connection cap ({cap} per execution) reached"
        self.refused_connections += 1
        if self.refused_connections == 1:  # one record, not thousands: the count is kept aside
            self._finish(self._record("", 0, reason + "; later connections refused too"))
        _send_now(conn, refusal(403, "connection-limit", reason))

    async def _serve(self, client: Endpoint) -> None:
        try:
            async with asyncio.timeout(self.caps.header_timeout_s):
                head = await read_head(client.recv, self.caps.max_head_bytes)
        except ClientGone:
            return
        except TimeoutError:  # before OSError, of which it is a subclass
            limit = self.caps.header_timeout_s
            reason = f"request head not complete within {limit:g} s (header timeout)"
            self._finish(self._record("", 0, reason))
            await _answer(client, refusal(408, "header-timeout", reason))
            return
        except OSError:
            return
        except ProxyRefusal as exc:
            self._finish(self._record(exc.host, exc.port, exc.reason))
            await _answer(client, refusal(exc.status, exc.code, exc.reason))
            return
        attempt = self._record(head.host, head.port, "")
        try:
            origin = Endpoint(await self._open(head.host, head.port, attempt))
        except ProxyRefusal as exc:
            attempt.reason = exc.reason
            self._finish(attempt)
            await _answer(client, refusal(exc.status, exc.code, exc.reason))
            return
        except asyncio.CancelledError:
            attempt.reason = "the proxy shut down before a connection was made"
            self._finish(attempt)
            raise
        try:
            meter = Meter(
                attempt, self.caps.bytes_per_connection, self._budget, self.caps.idle_timeout_s
            )
            session = Session(head, client, origin, meter)
            await session.greet()
            cut = await relay(*session.directions())
            if cut is not None:
                attempt.reason += f"; closed: {cut}"
        except asyncio.CancelledError:
            attempt.reason += "; closed: the proxy shut down"
            raise
        except (OSError, Cut):
            pass  # the client left before the tunnel answer reached it
        finally:
            origin.close()
            self._finish(attempt)


async def _answer(client: Endpoint, data: bytes) -> None:
    """Write the proxy's own short answer; a client that is gone or not reading is dropped."""
    with contextlib.suppress(OSError):
        async with asyncio.timeout(5):
            await client.sendall(data)


def _send_now(conn: socket.socket, data: bytes) -> None:
    """Best effort, never waits: for refusals that must not hold the connection."""
    with contextlib.suppress(OSError):
        conn.send(data)
