"""Capture of a sandbox's stdout/stderr: read while produced, capped, never kept past the cap."""

from __future__ import annotations

import asyncio
import base64
import codecs
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["CappedOutput", "Splitter", "decode_output"]

CHUNK = 65536


class Splitter(Protocol):
    """Takes what is not the program's own output out of a stream (a runner's records)."""

    def feed(self, chunk: bytes) -> bytes:
        """The program's bytes of `chunk` (some may be held back until the next one)."""

    def flush(self) -> bytes:
        """The bytes held back, at the end of the stream."""


class CappedOutput:
    """Keeps the first `cap` bytes of a stream and calls `on_overflow` once when it passes;
    `follow` (if given) is handed each chunk of what is kept, as it arrives."""

    def __init__(
        self,
        cap: int,
        on_overflow: Callable[[], None],
        follow: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> None:
        self.cap = cap
        self.truncated = False
        self._buf = bytearray()
        self._on_overflow = on_overflow
        self._follow = follow

    @property
    def data(self) -> bytes:
        """The bytes kept so far (at most `cap`)."""
        return bytes(self._buf)

    async def pump(self, reader: asyncio.StreamReader, splitter: Splitter | None = None) -> None:
        """Read `reader` until EOF; past the cap, keep draining (so the writer never blocks on a
        full pipe) but store nothing more. A `splitter` first takes out what is not output."""
        while chunk := await reader.read(CHUNK):
            await self._keep(splitter.feed(chunk) if splitter else chunk)
        if splitter:
            await self._keep(splitter.flush())

    async def _keep(self, chunk: bytes) -> None:
        room = self.cap - len(self._buf)
        kept = chunk[: max(room, 0)]
        self._buf += kept
        if len(chunk) > room and not self.truncated:
            self.truncated = True
            self._on_overflow()
        if kept and self._follow is not None:
            await self._follow(kept)


def decode_output(data: bytes, *, truncated: bool = False) -> tuple[str, str | None]:
    """Text for the JSON response, plus the raw bytes in base64 when they are not valid UTF-8
    (so binary output survives; the text then shows U+FFFD where bytes were invalid).

    A cut made by the cap may split a character; that tail alone does not make output binary.
    """
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=not truncated), None
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), base64.b64encode(data).decode("ascii")
