"""From a checked host and port to a connected socket: filter, one lookup, address checks.

The filter is asked first (deny on no match or on any error). A name is resolved once, every
address is checked, and the socket connects to a checked address literal, so nothing is looked
up again between the check and the connect (no DNS rebinding). Loopback, private, link-local,
CGNAT, multicast, reserved and documentation addresses pass only when `allow_private` is on AND
an allow entry names that exact address and port; cloud-metadata addresses never pass.
"""

from __future__ import annotations

import asyncio
import os
import socket

from sandbox.egress._http import ProxyRefusal
from sandbox.egress.address import blocked_category, canonical_ip, parse_ip
from sandbox.egress.base import (
    EgressCaps,
    EgressFilter,
    IPAddress,
    ResolveError,
    Resolver,
    Verdict,
)

__all__ = ["Dialer"]

_MAX_ADDRESSES = 4


class Dialer:
    """Decides and connects for one proxy; raises ProxyRefusal with the answer to give."""

    def __init__(
        self,
        egress_filter: EgressFilter,
        resolver: Resolver,
        caps: EgressCaps,
        *,
        allow_private: bool,
    ) -> None:
        self.filter = egress_filter
        self.resolver = resolver
        self.caps = caps
        self.allow_private = allow_private

    def check(self, host: str, port: int) -> Verdict:
        """The filter's allowing verdict, or ProxyRefusal."""
        try:
            verdict = self.filter.check(host, port)
        except Exception as exc:  # deny on any filter error, never allow
            raise ProxyRefusal(403, "blocked-by-allowlist", f"filter error: {exc}") from None
        if not verdict.allowed:
            raise ProxyRefusal(403, "blocked-by-allowlist", verdict.reason)
        return verdict

    async def dial(self, host: str, port: int) -> tuple[socket.socket, IPAddress]:
        """A socket connected to a checked address of `host`, and that address."""
        candidates: list[IPAddress] = []
        refused: list[str] = []
        for found in await self._resolve(host, port):
            address = canonical_ip(found)
            category = blocked_category(address)
            if category is None or self._private_allowed(address, port, category):
                candidates.append(address)
            else:
                refused.append(f"{address} ({category})")
        if not candidates:
            reason = f"{host} resolves only to refused addresses: {', '.join(refused[:4])}"
            if self.allow_private and not any("metadata" in r for r in refused):
                reason += "; the policy must name the exact address:port to reach it"
            raise ProxyRefusal(403, "blocked-address", reason)
        failures: list[str] = []
        for address in candidates[:_MAX_ADDRESSES]:
            try:
                return await self._connect(address, port), address
            except OSError as exc:  # TimeoutError included
                failures.append(
                    f"{address}: {os.strerror(exc.errno) if exc.errno else 'timed out'}"
                )
        raise ProxyRefusal(502, "upstream-failed", f"connect failed: {'; '.join(failures)}")

    def _private_allowed(self, address: IPAddress, port: int, category: str) -> bool:
        if not self.allow_private or "metadata" in category:
            return False
        try:
            return self.filter.names_address(address, port)
        except Exception:
            return False

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        literal = parse_ip(host)
        if literal is not None:
            return [literal]
        try:
            async with asyncio.timeout(self.caps.resolve_timeout_s):
                return list(await self.resolver.resolve(host, port))
        except ResolveError as exc:
            raise ProxyRefusal(502, "resolve-failed", str(exc)) from None
        except TimeoutError:
            raise ProxyRefusal(502, "resolve-failed", f"resolving {host} timed out") from None
        except Exception as exc:
            raise ProxyRefusal(502, "resolve-failed", f"resolver error: {exc}") from None

    async def _connect(self, address: IPAddress, port: int) -> socket.socket:
        """Connect to the checked address itself: a literal, so nothing is looked up again."""
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with asyncio.timeout(self.caps.connect_timeout_s):
                await asyncio.get_running_loop().sock_connect(sock, (str(address), port))
            return sock
        except BaseException:
            sock.close()
            raise
