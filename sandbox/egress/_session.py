"""The two directions of one allowed connection: a CONNECT tunnel or one plain-HTTP exchange."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import h11

from sandbox.egress._http import RequestHead, upstream_request
from sandbox.egress._relay import CHUNK, Cut, Endpoint, Meter, pump, send

__all__ = ["Session"]

_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

Direction = Coroutine[Any, Any, None]


class Session:
    """Builds the up (client to origin) and down (origin to client) coroutines of a connection."""

    def __init__(self, head: RequestHead, client: Endpoint, origin: Endpoint, meter: Meter):
        self.head = head
        self.client = client
        self.origin = origin
        self.meter = meter

    def directions(self) -> tuple[Direction, Direction]:
        """The up and down coroutines, to run together."""
        down = pump(self.origin, self.client, self.meter, up=False)
        if self.head.is_connect:
            return self._tunnel_up(), down
        return self._request_up(), down

    async def greet(self) -> None:
        """Tell a CONNECT client its tunnel is open; called before `directions` run."""
        if self.head.is_connect:
            await self.meter.write(self.client, _ESTABLISHED)

    async def _tunnel_up(self) -> None:
        if self.head.leftover:  # bytes the client sent right after CONNECT (a TLS hello, say)
            await send(self.origin, self.head.leftover, self.meter, up=True)
        await pump(self.client, self.origin, self.meter, up=True)

    async def _request_up(self) -> None:
        """Send the re-serialised head and the body, re-framed by h11; never read past it."""
        conn = self.head.conn
        upstream, data = upstream_request(self.head)
        await send(self.origin, data, self.meter, up=True)
        if conn.they_are_waiting_for_100_continue:
            await self.meter.write(self.client, _CONTINUE)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                raise Cut("malformed request body") from None
            if event is h11.NEED_DATA:
                conn.receive_data(await self.meter.read(lambda: self.client.recv(CHUNK)))
            elif isinstance(event, h11.Data):
                out = upstream.send(h11.Data(data=event.data)) or b""
                await send(self.origin, out, self.meter, up=True)
            elif isinstance(event, h11.EndOfMessage):
                out = upstream.send(h11.EndOfMessage()) or b""
                if out:
                    await send(self.origin, out, self.meter, up=True)
                return
            else:
                raise Cut("the client closed before the request body ended")
