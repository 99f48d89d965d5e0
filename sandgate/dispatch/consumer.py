"""A worker's side of a Redis stream: read entries through a consumer group, heartbeat, and take
over the entries of consumers that died.

Each process is one consumer, named `<node>:<pid>:<random>` so a restarted worker never owns
its previous life's entries. It reads one entry per free slot (`XREADGROUP ... COUNT 1 BLOCK`),
so a busy worker takes nothing it cannot start now and a dead one holds at most what it was
running. Every beat it refreshes its heartbeat (a key that expires after `dead_after`), and
looks at the group's other consumers: the pending entries of one whose heartbeat is gone (and
stays gone, see `Heartbeat`) are claimed (`XCLAIM`, with a minimum idle time so two claimers
cannot both win) and handled as `lost_from` that consumer, beside the readers; a dead consumer
left with nothing pending is deleted.
Entries are acknowledged and deleted only once their handler returns; a handler retries its
own Redis writes, so only a dead process leaves an entry pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from sandgate.dispatch import _scripts as keys
from sandgate.dispatch._retry import until_redis_answers

__all__ = ["Heartbeat", "StreamWorker", "consumer_name", "live_consumers"]

log = structlog.get_logger(__name__)

Handle = Callable[[str, str | None], Awaitable[None]]  # (execution id, lost_from)
BLOCK_MS = 2000
CLAIM_BATCH = 16
CONFIRM_BEATS = 3


def consumer_name(node: str | None) -> str:
    """This process's consumer name: node, pid and a random suffix."""
    return f"{node or socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Heartbeat:
    """A consumer's heartbeat, and whether another consumer is dead.

    A heartbeat key expires `dead_after` after the last beat, but also while Redis itself was
    away (an outage longer than that expires every key at once): so a consumer is dead only
    once its key has stayed missing for `CONFIRM_BEATS` beat periods in which Redis answered
    this consumer. Every live consumer beats again within one period of Redis coming back."""

    def __init__(self, redis: Redis, consumer: str, dead_after_s: float) -> None:
        self.redis = redis
        self.consumer = consumer
        self.dead_after_ms = int(dead_after_s * 1000)
        self.period_s = min(1.0, dead_after_s / 3)
        self._missing_since: dict[str, float] = {}
        self._redis_down_at = 0.0

    async def beat(self, running: int, capacity: int) -> None:
        """Say this consumer is alive, with its load."""
        node, pid, _ = self.consumer.split(":")
        info = json.dumps(
            {
                "name": node,
                "pid": int(pid),
                "consumer": self.consumer,
                "running": running,
                "capacity": capacity,
            }
        )
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(keys.worker_key(self.consumer), info, px=self.dead_after_ms)
            pipe.sadd(keys.WORKERS, self.consumer)
            await pipe.execute()

    async def stop(self) -> None:
        """Drop the heartbeat at a clean exit (what is still pending is then taken over)."""
        with contextlib.suppress(RedisError):
            await self.redis.delete(keys.worker_key(self.consumer))

    def redis_was_away(self) -> None:
        """Note that Redis did not answer: missing heartbeats must be seen missing anew."""
        self._redis_down_at = time.monotonic()

    async def dead(self, consumer: str) -> bool:
        """Whether `consumer`'s heartbeat has been missing long enough (see the class)."""
        if await self.redis.exists(keys.worker_key(consumer)):
            self._missing_since.pop(consumer, None)
            return False
        now = time.monotonic()
        since = self._missing_since.get(consumer, now)
        if since <= self._redis_down_at:
            since = now
        self._missing_since[consumer] = since
        return now - since >= CONFIRM_BEATS * self.period_s


async def live_consumers(redis: Redis, dead_after_ms: int) -> list[tuple[dict[str, Any], float]]:
    """Each live consumer's heartbeat and its age in seconds; forgets the dead ones."""
    members = sorted(str(m) for m in await redis.smembers(keys.WORKERS))
    async with redis.pipeline(transaction=False) as pipe:
        for consumer in members:
            pipe.get(keys.worker_key(consumer))
            pipe.pttl(keys.worker_key(consumer))
        found = await pipe.execute()
    live, dead = [], []
    for i, consumer in enumerate(members):
        info, ttl = found[2 * i], found[2 * i + 1]
        if info is None or ttl < 0:
            dead.append(consumer)
            continue
        live.append((json.loads(info), max(0.0, (dead_after_ms - ttl) / 1000)))
    if dead:
        await redis.srem(keys.WORKERS, *dead)
    return live


def _entries(reply: Any) -> list[tuple[str, str | None]]:
    """(entry id, execution id) of each entry in a stream reply (a deleted one has no fields)."""
    return [(str(entry_id), (fields or {}).get("id")) for entry_id, fields in reply or ()]


class StreamWorker:
    """`capacity` readers of one stream's group, plus the take-over of dead consumers' entries."""

    def __init__(
        self,
        redis: Redis,
        stream: str,
        group: str,
        heartbeat: Heartbeat,
        capacity: int,
        handle: Handle,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.heartbeat = heartbeat
        self.consumer = heartbeat.consumer
        self.capacity = capacity
        self.handle = handle
        self.running = 0
        self._idle: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        """Start the readers."""
        self._tasks = [asyncio.create_task(self._read()) for _ in range(self.capacity)]

    async def stop(self, grace_s: float) -> None:
        """Stop reading; let handlers running now finish within `grace_s`."""
        self._stopping = True
        for task in self._idle:
            task.cancel()
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def ensure_group(self) -> None:
        """Create the group (from the stream's start) if Redis does not have it."""
        try:
            await self.redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _read(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while not self._stopping:  # one reader per slot: it reads only when it is free
            self._idle.add(task)
            try:
                got = await until_redis_answers(self._read_one)
            finally:
                self._idle.discard(task)
            for _stream, entries in cast(Any, got) or ():
                for entry_id, execution_id in _entries(entries):
                    await self._handle(entry_id, execution_id, None)

    async def _read_one(self) -> Any:
        """One entry for this consumer, or None after the block; creates a missing group."""
        try:
            return await self.redis.xreadgroup(
                self.group, self.consumer, {self.stream: ">"}, count=1, block=BLOCK_MS
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()  # Redis lost it (no persistence): read again next turn
            return None

    async def _handle(self, entry_id: str, execution_id: str | None, lost_from: str | None) -> None:
        self.running += 1
        try:
            if execution_id:
                await self.handle(execution_id, lost_from)
        except Exception as exc:  # an entry that cannot be handled must not stop the reader
            log.error("queue.entry_failed", stream=self.stream, entry=entry_id, exc_info=exc)
        finally:
            self.running -= 1
        await self._ack(entry_id)

    async def _ack(self, entry_id: str) -> None:
        async def ack() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xack(self.stream, self.group, entry_id)
                pipe.xdel(self.stream, entry_id)
                await pipe.execute()

        await until_redis_answers(ack)

    async def take_over(self) -> None:
        """Claim and handle the pending entries of consumers whose heartbeat is gone."""
        try:
            consumers = await self.redis.xinfo_consumers(self.stream, self.group)
        except ResponseError:
            return  # no group yet
        for info in consumers:
            name = info["name"]
            if name == self.consumer or not await self.heartbeat.dead(name):
                continue
            if not info["pending"]:
                await self.redis.xgroup_delconsumer(self.stream, self.group, name)
                continue
            pending = await self.redis.xpending_range(
                self.stream, self.group, "-", "+", CLAIM_BATCH, consumername=name
            )
            ids: list[str | bytes | int | memoryview[int]] = [p["message_id"] for p in pending]
            claimed = await self.redis.xclaim(
                self.stream,
                self.group,
                self.consumer,
                self.heartbeat.dead_after_ms // 2,
                ids,
            )
            for entry_id, execution_id in _entries(claimed):
                log.warning("queue.taken_over", stream=self.stream, entry=entry_id, dead=name)
                # Beside the readers, not in their slots (which idle readers hold while they
                # block): never waiting here keeps the take-over loop going. The host's own
                # sandbox slots still cap what runs at once.
                self._tasks.append(asyncio.create_task(self._handle(entry_id, execution_id, name)))
