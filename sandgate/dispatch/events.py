"""An execution's (or a session call's) events stream in Redis, `sandgate:events:<id>`: how its
output and its end get from the node that runs it to the node that waits for it.

The worker adds a streamed run's output lines (`line`, and `withheld` when screening blocked
the output) as screening releases them, then a last word: `end` (a queued job's state, added
by the FINISH script), or for a session call `admitted` (its refusals are over) and `reply`.
Entries the writer adds have ids `0-<n>` of their own, so a write retried after a lost reply
is not added twice; the waiter reads from the start, relays the lines and returns at the first
other entry. The stream expires `EVENTS_TTL_S` after its last write.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from sandgate.dispatch import _scripts as keys
from sandgate.dispatch._retry import REDIS_DOWN, until_redis_answers
from sandgate.dispatch.base import Relay

__all__ = ["EventsReader", "EventsWriter"]


class EventsWriter:
    """The worker's side: output lines, then the last word (a `Relay` for the run)."""

    def __init__(self, redis: Redis, stream_id: str) -> None:
        self.redis = redis
        self.key = keys.events_key(stream_id)
        self._count = 0

    async def add(self, fields: dict[str, str]) -> None:
        """Add one entry, retried until Redis answers."""
        self._count += 1
        entry = f"0-{self._count}"

        async def add() -> None:
            try:
                await self.redis.xadd(self.key, fields, id=entry)  # type: ignore[arg-type]
            except ResponseError as exc:
                if "equal or smaller" not in str(exc):
                    raise  # not the retry of a write that happened
            await self.redis.expire(self.key, keys.EVENTS_TTL_S)

        await until_redis_answers(add)

    async def relay(self, line: bytes) -> None:
        """One output line."""
        await self.add({"line": line.decode("utf-8")})

    async def withhold(self) -> None:
        """Screening blocked the output."""
        await self.add({"withheld": "1"})


class EventsReader:
    """The waiter's side: lines to `relay` as they come, and the first other entry."""

    def __init__(self, redis: Redis, stream_id: str, relay: Relay | None) -> None:
        self.redis = redis
        self.key = keys.events_key(stream_id)
        self.relay = relay
        self.last = "0-0"

    async def wait(self, timeout: float) -> dict[str, str] | None:
        """Relay what comes within `timeout` (at most 2 s); the first entry that is not
        output, or None (also while Redis is away: the wait goes on)."""
        until = time.monotonic() + min(2.0, max(0.01, timeout))
        while (left := until - time.monotonic()) > 0:
            try:
                read: Any = await self.redis.xread(
                    {self.key: self.last}, block=max(1, int(left * 1000))
                )
            except REDIS_DOWN:
                await asyncio.sleep(min(0.5, left))
                return None
            for _stream, entries in read or ():
                for entry_id, fields in entries:
                    self.last = entry_id
                    if "line" in fields or "withheld" in fields:
                        await self._hand_on(fields)
                    else:
                        return dict(fields)
        return None

    async def _hand_on(self, fields: dict[str, str]) -> None:
        if self.relay is None:
            return
        if "line" in fields:
            await self.relay.relay(fields["line"].encode("utf-8"))
        else:
            await self.relay.withhold()
