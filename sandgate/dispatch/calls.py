"""Session calls through Redis: a call that arrives at any node goes to the worker that holds the
session's sandbox, and its answer comes back the way a queued job's does.

Each worker reads a stream of its own, `sandgate:calls:<consumer>` (no group: it is the only
reader, and a call is never handed to another worker, since the session's state is in that
worker's sandbox). The caller adds the call and reads the call's events stream
(`sandgate.dispatch.events`): a streamed execute's output lines, `admitted` once the worker's
admission passed (refusals before it are plain error answers), and the `reply`. While it
waits, the caller watches the worker's heartbeat: a worker whose heartbeat stays away (the
rule of `consumer.Heartbeat`) is gone, and so is the session (`WorkerGone`). A call carries
the time its caller stops waiting; a worker drops a call it reads after that.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import structlog
from pydantic import BaseModel, Field
from redis.asyncio import Redis

from sandgate.dispatch import _scripts as keys
from sandgate.dispatch._retry import REDIS_DOWN, engine, until_redis_answers
from sandgate.dispatch.base import Failure, Relay
from sandgate.dispatch.consumer import Heartbeat
from sandgate.dispatch.events import EventsReader, EventsWriter
from sandgate.keys import ApiKey
from sandgate.models import ExecuteRequest, SessionCreate

__all__ = [
    "CallChannel",
    "CallHandler",
    "CallReply",
    "CallServer",
    "CallTimedOut",
    "Follow",
    "Op",
    "SessionCall",
    "SessionCalls",
    "WorkerGone",
]

log = structlog.get_logger(__name__)
CALLS_TTL_S = 86_400  # a dead worker's call stream goes with it
Op = Literal["create", "execute", "upload", "download", "delete"]


class SessionCall(BaseModel):
    """One session request, as the node that took it hands it to the session's worker."""

    call_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    op: Op
    key: ApiKey = Field(description="The caller's key record (never the secret).")
    request_id: str
    client: str | None
    session_id: str | None = None
    create: SessionCreate | None = None
    execute: ExecuteRequest | None = None
    path: str | None = None
    data: str | None = Field(None, description="An upload's bytes, base64.")
    stream: bool = False
    deadline: float = Field(description="When the caller stops waiting (epoch seconds).")


class CallReply(BaseModel):
    """The worker's answer: the result's JSON (or a file's bytes), or the error it gave, and
    whether the worker wrote the request's audit record."""

    result: Any = None
    data: str | None = Field(None, description="A download's bytes, base64.")
    error: Failure | None = None
    recorded: bool = False


class WorkerGone(Exception):
    """The worker holding the session died: the session is gone with it."""


class CallTimedOut(Exception):
    """The worker did not answer before the call's deadline."""


class CallChannel(EventsWriter):
    """The worker's side of one call: output lines, `admitted`, then the reply."""

    async def admitted(self) -> None:
        """Admission passed: what follows is the answer (a stream may start)."""
        await self.add({"admitted": "1"})

    async def reply(self, reply: CallReply) -> None:
        """The last word."""
        await self.add({"reply": reply.model_dump_json()})


CallHandler = Callable[[SessionCall, CallChannel], Awaitable[CallReply]]


class Follow:
    """The caller's side of one sent call."""

    def __init__(self, redis: Redis, heartbeat: Heartbeat, worker: str, call: SessionCall):
        self.heartbeat = heartbeat
        self.worker = worker
        self.deadline = call.deadline
        self._events = EventsReader(redis, call.call_id, None)

    async def _next(self) -> dict[str, str]:
        """The next entry that is not output; WorkerGone, CallTimedOut."""
        while True:
            left = self.deadline - time.time()
            if left <= 0:
                raise CallTimedOut(f"the session's worker did not answer in time ({self.worker})")
            entry = await self._events.wait(min(left, self.heartbeat.period_s))
            if entry is not None:
                return entry
            try:
                gone = await self.heartbeat.dead(self.worker)
            except REDIS_DOWN:
                self.heartbeat.redis_was_away()
                continue
            if gone:
                raise WorkerGone(self.worker)

    async def admitted(self) -> CallReply | None:
        """None once the worker admitted the call; its reply if it refused it."""
        entry = await self._next()
        return CallReply.model_validate_json(entry["reply"]) if "reply" in entry else None

    async def reply(self, relay: Relay | None = None) -> CallReply:
        """The reply, the output lines before it handed to `relay`."""
        self._events.relay = relay
        while "reply" not in (entry := await self._next()):
            pass  # `admitted`: the answer follows
        return CallReply.model_validate_json(entry["reply"])


class SessionCalls:
    """Sends calls to the workers holding sessions (any node) and serves a worker's own."""

    def __init__(self, redis: Redis, heartbeat: Heartbeat) -> None:
        self.redis = redis
        self.heartbeat = heartbeat

    async def send(self, worker: str, call: SessionCall) -> Follow:
        """Hand `call` to `worker`; QueueUnavailable when Redis is away (nothing was sent)."""
        stream = keys.calls_key(worker)
        with engine():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.xadd(stream, {"call": call.model_dump_json()})
                pipe.expire(stream, CALLS_TTL_S)
                await pipe.execute()
        return Follow(self.redis, self.heartbeat, worker, call)


class CallServer:
    """A worker's reader of its call stream: each call handled in a task of its own."""

    def __init__(self, redis: Redis, consumer: str, handle: CallHandler) -> None:
        self.redis = redis
        self.stream = keys.calls_key(consumer)
        self.handle = handle
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._last = "0-0"

    def start(self) -> None:
        """Start reading."""
        self._reader = asyncio.create_task(self._read())

    async def close(self, grace_s: float) -> None:
        """Stop reading; calls being handled finish within `grace_s`."""
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._tasks:
            _done, pending = await asyncio.wait(self._tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _read(self) -> None:
        self._last = "0-0"  # the stream is this process's own: everything in it is for it
        while True:
            read: Any = await until_redis_answers(self._read_some)
            for _stream, entries in read or ():
                for entry_id, fields in entries:
                    self._last = entry_id
                    await until_redis_answers(self._forget_read)
                    call = SessionCall.model_validate_json(fields["call"])
                    if call.deadline <= time.time():
                        log.warning("session.call_dropped", call=call.op, reason="past deadline")
                        continue
                    task = asyncio.create_task(self._serve(call))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)

    async def _read_some(self) -> Any:
        return await self.redis.xread({self.stream: self._last}, block=2000)

    async def _forget_read(self) -> None:
        await self.redis.xdel(self.stream, self._last)

    async def _serve(self, call: SessionCall) -> None:
        channel = CallChannel(self.redis, call.call_id)
        try:
            reply = await self.handle(call, channel)
        except Exception as exc:  # the caller must get an answer whatever happened
            log.error("session.call_crashed", op=call.op, exc_info=exc)
            error = Failure(type="internal_error", message="internal error", status_code=500)
            reply = CallReply(error=error)
        await channel.reply(reply)
