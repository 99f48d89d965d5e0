"""A container's attach stream, read without threads: Docker's multiplexed frames split into
stdout and stderr as asyncio streams the backend's `CappedOutput` pumps can read.

Docker (without a TTY) sends each chunk of output as an 8-byte header, `stream kind, 0, 0, 0,
length (big-endian u32)`, then the bytes. The attach request is made with the SDK (so its
errors are the SDK's), then its hijacked socket is handed to asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

__all__ = ["AttachStream", "open_attach_stream"]

STDOUT, STDERR = 1, 2
HEADER = 8


class AttachStream:
    """stdout and stderr of one container until it stops, demultiplexed as they arrive."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.stdout = asyncio.StreamReader()
        self.stderr = asyncio.StreamReader()

    async def demux(self) -> None:
        """Copy frames to `stdout`/`stderr` until the daemon ends the stream (container gone)."""
        try:
            while True:
                header = await self._reader.readexactly(HEADER)
                size = int.from_bytes(header[4:8], "big")
                data = await self._reader.readexactly(size) if size else b""
                if header[0] == STDERR:
                    self.stderr.feed_data(data)
                elif header[0] == STDOUT:
                    self.stdout.feed_data(data)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # end of stream: the container stopped, or the daemon went away
        finally:
            self.stdout.feed_eof()
            self.stderr.feed_eof()

    def close(self) -> None:
        """Drop the connection to the daemon (idempotent)."""
        with contextlib.suppress(OSError, RuntimeError):
            self._writer.close()


async def open_attach_stream(hijacked: Any) -> AttachStream:
    """Wrap the socket `APIClient.attach_socket` returned (a unix or plain TCP connection)."""
    raw = getattr(hijacked, "_sock", hijacked)
    if not isinstance(raw, socket.socket) or type(raw) is not socket.socket:
        raise TypeError("the docker backend needs a unix:// or tcp:// daemon address, not TLS")
    # asyncio owns this duplicate; the SDK's response object keeps (and later closes) the
    # original, so neither closes the other's descriptor under it.
    sock = raw.dup()
    hijacked.close()  # the SDK's file object holds a reference: close it, then the socket
    raw.close()
    reader, writer = await asyncio.open_connection(sock=sock)
    return AttachStream(reader, writer)
