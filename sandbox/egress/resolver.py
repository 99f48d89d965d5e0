"""The default `Resolver`: the host's own resolver (getaddrinfo), asked once per attempt."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from sandbox.egress.base import IPAddress, ResolveError

__all__ = ["SystemResolver"]


class SystemResolver:
    """Resolves through libc's getaddrinfo in the event loop's executor."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every distinct address of `host`, in the order getaddrinfo gives them."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (socket.gaierror, UnicodeError) as exc:
            raise ResolveError(f"cannot resolve {host}: {exc.args[-1]}") from None
        found: list[IPAddress] = []
        for _family, _type, _proto, _name, sockaddr in infos:
            # A zone suffix (fe80::1%eth0) is dropped: the address is link-local and refused anyway.
            text = str(sockaddr[0]).partition("%")[0]
            address = ipaddress.ip_address(text)
            if address not in found:
                found.append(address)
        if not found:
            raise ResolveError(f"cannot resolve {host}: no addresses")
        return found
