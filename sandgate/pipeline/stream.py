"""Streamed output, screened before a byte leaves (DESIGN: Streaming).

`StreamScreen` screens one stream (stdout or stderr) as it grows and releases only text that
screening has seen together with what follows it, so a finding split across two writes is still
found whole: complete lines are released, a partial line is held (past `HOLD` characters, all but
its last `HOLD` are released), an open `-----BEGIN` block is held until its `-----END`, and the
release point never cuts a finding in two. What is released is redacted as the stage says; a
`block` stops the stream. `Events` turns a run's output into the NDJSON lines the client reads:
`{"type": "stdout"|"stderr", "text"}`, `{"type": "result", ...}`, then `end` or `error`. On an
API node the output lines come screened from the worker that runs the code (`relay`, and
`withhold` when its screening blocked the output), and this node adds the last word.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal, TypeVar

from guards import Action, ScreenResult
from sandgate.dispatch.base import Relay

__all__ = ["HOLD", "Events", "StreamScreen", "relayed_events", "streamed_to"]

HOLD = 256
BLOCK_HOLD = 64 << 10
_OPEN = re.compile(r"-----BEGIN [A-Z0-9 ]+-----")
_CLOSE = re.compile(r"-----END [A-Z0-9 ]+-----")

T = TypeVar("T")
Screen = Callable[[str], Awaitable[ScreenResult]]
StreamName = Literal["stdout", "stderr"]


def _open_block(text: str) -> int | None:
    """Where an unclosed `-----BEGIN ...-----` block starts in `text`, if one does."""
    last_open = None
    for match in _OPEN.finditer(text):
        last_open = match
    if last_open is None or _CLOSE.search(text, last_open.end()):
        return None
    return last_open.start()


class StreamScreen:
    """Releases one stream's text once it is safe to; `blocked` is set on a `block` verdict."""

    def __init__(self, screen: Screen) -> None:
        self._screen = screen
        self._pending = ""
        self.blocked: ScreenResult | None = None

    def _boundary(self, pending: str) -> int:
        block = _open_block(pending)
        if block is not None and len(pending) - block < BLOCK_HOLD:
            pending = pending[:block]
        newline = pending.rfind("\n")
        if newline >= 0:
            return newline + 1
        return max(0, len(pending) - HOLD)

    async def feed(self, text: str) -> str:
        """Take more of the stream; the text that may go out now (redacted as needed)."""
        self._pending += text
        return await self._release(final=False)

    async def finish(self) -> str:
        """The stream ended: whatever is left, screened."""
        return await self._release(final=True)

    async def _release(self, *, final: bool) -> str:
        pending = self._pending
        if self.blocked is not None or not pending:
            return ""
        boundary = len(pending) if final else self._boundary(pending)
        if boundary == 0:
            return ""
        seen = await self._screen(pending)
        if seen.verdict is Action.BLOCK:
            self.blocked, self._pending = seen, ""
            return ""
        for finding in seen.findings:
            if finding.start < boundary < finding.end:
                boundary = finding.start  # never cut a finding: it goes out whole, later
        out, self._pending = pending[:boundary], pending[boundary:]
        if any(f.end <= boundary and f.action is not Action.ALLOW for f in seen.findings):
            redacted = await self._screen(out)
            if redacted.verdict is Action.BLOCK:
                self.blocked, self._pending = redacted, ""
                return ""
            out = redacted.text
        return out


def line(event: dict[str, Any]) -> bytes:
    """One NDJSON line."""
    return json.dumps(event, ensure_ascii=False).encode("utf-8") + b"\n"


class Events:
    """The events of one streamed execution: output as it is released, then the last word.

    `sink` is the backend's `OutputSink`; `lines()` yields NDJSON until `close()`."""

    def __init__(self, screen: Screen) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._screens = {"stdout": StreamScreen(screen), "stderr": StreamScreen(screen)}
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")(errors="replace") for name in self._screens
        }
        self._lock = asyncio.Lock()
        self._withheld = False

    @property
    def blocked(self) -> bool:
        """True once screening blocked either stream: nothing more of the output goes out."""
        return self._withheld or any(s.blocked is not None for s in self._screens.values())

    async def relay(self, line: bytes) -> None:
        """An output line another node released (already screened there)."""
        if not self.blocked:
            await self._queue.put(line)

    async def withhold(self) -> None:
        """The node that screened the output blocked it: nothing more of it goes out."""
        self._withheld = True

    async def sink(self, stream: StreamName, chunk: bytes) -> None:
        """Receive raw output from the sandbox."""
        text = self._decoders[stream].decode(chunk)
        async with self._lock:  # one release at a time, in arrival order
            await self._emit(stream, await self._screens[stream].feed(text))

    async def finish_output(self) -> None:
        """The run ended: release what each stream still holds."""
        async with self._lock:
            for stream, screen in self._screens.items():
                rest = self._decoders[stream].decode(b"", final=True)
                if rest:
                    await self._emit(stream, await screen.feed(rest))  # type: ignore[arg-type]
                await self._emit(stream, await screen.finish())  # type: ignore[arg-type]

    async def _emit(self, stream: StreamName, text: str) -> None:
        if text and not self.blocked:
            await self._queue.put(line({"type": stream, "text": text}))

    async def send(self, event: dict[str, Any]) -> None:
        """A `result`, `end` or `error` event."""
        await self._queue.put(line(event))

    async def close(self) -> None:
        """No more events."""
        await self._queue.put(None)

    async def lines(self) -> AsyncIterator[bytes]:
        """The NDJSON lines, as they come, until `close`."""
        while (item := await self._queue.get()) is not None:
            yield item


async def _screened_elsewhere(text: str) -> ScreenResult:
    raise RuntimeError("relayed output is screened by the node that produced it")


def relayed_events() -> Events:
    """The events of an execution another node runs: its lines come through `relay`."""
    return Events(_screened_elsewhere)


async def streamed_to(relay: Relay, events: Events, work: Awaitable[T]) -> T:
    """Await `work` (a run that feeds `events`) while its output lines go to `relay` as they
    are released; every line is handed on before this returns (then `withhold` if screening
    blocked the output)."""

    async def pump() -> None:
        async for line in events.lines():
            await relay.relay(line)
        if events.blocked:
            await relay.withhold()

    pumping = asyncio.create_task(pump())
    try:
        return await work
    finally:
        await events.close()
        await pumping
