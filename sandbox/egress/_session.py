"""The two directions of one allowed connection: a CONNECT tunnel or one plain-HTTP exchange."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import h11

from sandbox.egress._http import RequestHead, upstream_request
from sandbox.egress._relay import CHUNK, Cut, Meter, pump, send

__all__ = ["Session"]

_ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

Direction = Coroutine[Any, Any, None]


class Session:
    """Builds the up (client to origin) and down (origin to client) coroutines of a connection."""

    def __init__(
        self,
        head: RequestHead,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        meter: Meter,
    ) -> None:
        self.head = head
        self.reader = reader
        self.writer = writer
        self.up_reader, self.up_writer = upstream
        self.meter = meter

    def directions(self) -> tuple[Direction, Direction]:
        """The two coroutines to run together; the CONNECT answer is written before either."""
        down = pump(self.up_reader, self.writer, self.meter, up=False)
        if self.head.is_connect:
            self.writer.write(_ESTABLISHED)
            return self._tunnel_up(), down
        return self._request_up(), down

    async def _tunnel_up(self) -> None:
        if self.head.leftover:  # bytes the client sent right after CONNECT (a TLS hello, say)
            await send(self.up_writer, self.head.leftover, self.meter, up=True)
        await pump(self.reader, self.up_writer, self.meter, up=True)

    async def _request_up(self) -> None:
        """Send the re-serialised head and the body, re-framed by h11; never read past it."""
        conn = self.head.conn
        upstream, data = upstream_request(self.head)
        await send(self.up_writer, data, self.meter, up=True)
        if conn.they_are_waiting_for_100_continue:
            self.writer.write(_CONTINUE)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                raise Cut("malformed request body") from None
            if event is h11.NEED_DATA:
                chunk = await self.meter.active(lambda: self.reader.read(CHUNK))
                conn.receive_data(chunk)
            elif isinstance(event, h11.Data):
                out = upstream.send(h11.Data(data=event.data)) or b""
                await send(self.up_writer, out, self.meter, up=True)
            elif isinstance(event, h11.EndOfMessage):
                out = upstream.send(h11.EndOfMessage()) or b""
                if out:
                    await send(self.up_writer, out, self.meter, up=True)
                return
            else:
                raise Cut("the client closed before the request body ended")
