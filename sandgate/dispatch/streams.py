"""The dispatcher of several nodes: Redis Streams with consumer groups, states in Redis hashes.

An API node submits (one script: cap check, state `queued`, stream entry) and, for a
synchronous `/execute`, reads the execution's events stream (`XREAD BLOCK`) until a worker
finishes it: a streamed job's output lines come on it as the worker releases them, and last
the end, which carries the answer. A worker (`open` with handlers) reads the job stream,
starts only a `queued` job, runs it, and finishes it in one script that also adds the end and
queues the webhook. Redis going away is a 503 for new work (nothing is queued); what was
queued or running waits, retrying its Redis writes, and carries on when Redis is back (with
`appendonly yes`, a restart keeps the streams, groups and states). Why not a job library: arq
polls Redis (0.5 s by default, for jobs and for results) and re-runs a job whose in-progress
key expired, which is neither the latency nor the at-most-once start this needs; Streams give
both directly.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from sandgate.dispatch import _scripts as keys
from sandgate.dispatch._hashes import state_of
from sandgate.dispatch._retry import REDIS_DOWN, engine
from sandgate.dispatch.base import (
    BUSY,
    Dispatcher,
    ExecutionState,
    JobHandler,
    LostHandler,
    QueueFull,
    QueueStats,
    QueueUnavailable,
    Relay,
    WebhookState,
    WorkerInfo,
)
from sandgate.dispatch.calls import CallHandler, CallServer, SessionCalls
from sandgate.dispatch.consumer import Heartbeat, consumer_name, live_consumers
from sandgate.dispatch.events import EventsReader
from sandgate.dispatch.redis_worker import RedisWorker
from sandgate.dispatch.webhooks import Webhooks
from sandgate.metrics import Metrics
from sandgate.pipeline.job import Job

__all__ = ["RedisDispatcher"]

log = structlog.get_logger(__name__)


class RedisDispatcher(Dispatcher):
    """Jobs, states and heartbeats in one Redis; any number of API nodes and workers."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        node: str | None,
        capacity: int,
        max_depth: int,
        ttl_s: int,
        dead_after_s: float,
        webhooks: Webhooks | None,
        metrics: Metrics,
        grace_s: float,
    ) -> None:
        # redis-py's own retry rides out a blip of a few hundred ms; longer is a 503. Every
        # script is idempotent, so a retry after a reply that was lost changes nothing.
        self.redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=5,
            socket_connect_timeout=2,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        )
        self.consumer = consumer_name(node)
        self.capacity = capacity
        self.max_depth = max_depth
        self.ttl_s = ttl_s
        self.dead_after_ms = int(dead_after_s * 1000)
        self.webhooks = webhooks
        self.metrics = metrics
        self.grace_s = grace_s
        self._submit = self.redis.register_script(keys.SUBMIT)
        self._cancel = self.redis.register_script(keys.CANCEL)
        self._worker: RedisWorker | None = None
        self.heartbeat = Heartbeat(self.redis, self.consumer, dead_after_s)
        self.calls = SessionCalls(self.redis, self.heartbeat)
        self._call_server: CallServer | None = None

    async def open(self, run: JobHandler | None, lost: LostHandler | None) -> None:
        """Take jobs (and deliver webhooks) when handlers are given; API nodes only submit."""
        if run is not None and lost is not None:
            self._worker = RedisWorker(self, run, lost)
            self._worker.start()

    def serve_calls(self, handle: CallHandler) -> None:
        """Serve the calls sent to this node's sessions (a node that holds sessions)."""
        self._call_server = CallServer(self.redis, self.consumer, handle)
        self._call_server.start()

    async def worker_dead(self, consumer: str) -> bool:
        """Whether `consumer`'s heartbeat stayed away (never while Redis itself is away)."""
        if consumer == self.consumer:
            return False
        try:
            return await self.heartbeat.dead(consumer)
        except REDIS_DOWN:
            self.heartbeat.redis_was_away()
            return False

    async def close(self) -> None:
        """Stop taking work (running jobs and calls finish within the grace), then disconnect."""
        if self._call_server is not None:
            await self._call_server.close(self.grace_s)
        if self._worker is not None:
            await self._worker.close()
        if self.webhooks is not None:
            await self.webhooks.close()
        await self.redis.aclose()

    # The API node's side.

    async def submit(self, job: Job) -> ExecutionState:
        """Queue `job` unless the queue is at its cap."""
        with engine():
            queued = await self._submit(
                keys=[keys.QUEUED, keys.exec_key(job.execution_id), keys.JOBS],
                args=[
                    self.max_depth,
                    job.execution_id,
                    job.queued_at,
                    job.model_dump_json(),
                    job.key.tenant,
                    self.ttl_s,
                    job.webhook_url or "",
                ],
            )
        if not queued:
            raise QueueFull(f"{self.max_depth} executions are waiting already")
        return ExecutionState(
            execution_id=job.execution_id,
            status="queued",
            queued_at=job.queued_at,
            tenant=job.key.tenant,
        )

    async def call(
        self, job: Job, *, start_within: float, finish_within: float, relay: Relay | None = None
    ) -> ExecutionState:
        """Queue `job` and wait for it; cancel it if no worker started it within `start_within`."""
        state = await self.submit(job)
        start_by = time.monotonic() + start_within
        end_by = start_by + finish_within
        events = EventsReader(self.redis, job.execution_id, relay)
        while True:
            now = time.monotonic()
            deadline = start_by if state.status == "queued" and now < start_by else end_by
            end = await events.wait(deadline - now)
            state = _ended(job.execution_id, end) or await self._read(job.execution_id, state)
            if state.terminal:
                return state
            now = time.monotonic()
            if state.status == "queued" and now >= start_by and await self._cancelled(job):
                return state.model_copy(update={"status": "failed", "error": BUSY})
            if now >= end_by:
                return state

    async def _read(self, execution_id: str, known: ExecutionState) -> ExecutionState:
        """The state as its hash holds it (what is `known` while Redis is away)."""
        try:
            return await self.get(execution_id) or known
        except QueueUnavailable:
            return known

    async def _cancelled(self, job: Job) -> bool:
        try:
            return bool(
                await self._cancel(
                    keys=[keys.exec_key(job.execution_id), keys.QUEUED],
                    args=[job.execution_id, BUSY.model_dump_json(), time.time()],
                )
            )
        except REDIS_DOWN:
            return False

    async def settle(self, state: ExecutionState, webhook_url: str | None) -> None:
        """Store an answer the API node gave itself, and queue its webhook."""
        fields: dict[Any, Any] = {
            "status": state.status,
            "tenant": state.tenant,
            "queued_at": state.queued_at or time.time(),
            "finished_at": time.time(),
            "webhook_url": webhook_url or "",
        }
        if state.response is not None:
            fields["response"] = state.response.model_dump_json()
        if webhook_url:
            fields["webhook"] = WebhookState(state="pending").model_dump_json()
        with engine():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.exec_key(state.execution_id), mapping=fields)
                pipe.expire(keys.exec_key(state.execution_id), self.ttl_s)
                if webhook_url:
                    pipe.xadd(keys.DELIVERIES, {"id": state.execution_id})
                await pipe.execute()

    async def get(self, execution_id: str) -> ExecutionState | None:
        """The execution's state from its hash."""
        with engine():
            fields = await self.redis.hgetall(keys.exec_key(execution_id))
        return state_of(execution_id, fields)

    async def dead_letters(self, tenant: str | None, limit: int) -> list[ExecutionState]:
        """Dead-lettered executions, newest first."""
        key = keys.DEAD if tenant is None else keys.dead_key(tenant)
        with engine():
            ids = [str(i) for i in await self.redis.zrevrange(key, 0, limit - 1)]
        found = [await self.get(i) for i in ids]
        return [state for state in found if state is not None]

    async def stats(self) -> QueueStats:
        """Depth and oldest wait of the queue, and the live workers."""
        with engine():
            depth = await self.redis.zcard(keys.QUEUED)
            oldest: Any = await self.redis.zrange(keys.QUEUED, 0, 0, withscores=True)
            live = await live_consumers(self.redis, self.dead_after_ms)
        return QueueStats(
            depth=depth,
            oldest_wait_s=max(0.0, time.time() - oldest[0][1]) if oldest else 0.0,
            workers=[WorkerInfo(**info, heartbeat_age_s=age) for info, age in live],
        )


def _ended(execution_id: str, end: dict[str, str] | None) -> ExecutionState | None:
    """The state an `end` entry carries (the FINISH script's: status, field, payload)."""
    if end is None or "end" not in end:
        return None
    return state_of(execution_id, {"status": end["end"], end["field"]: end["payload"]})
