"""The dispatcher of several nodes: Redis Streams with consumer groups, states in Redis hashes.

An API node submits (one script: cap check, state `queued`, stream entry) and, for a
synchronous `/execute`, blocks on the execution's wake-up list (`BLPOP`) until a worker
finishes it. A worker (`open` with handlers) reads the stream, starts only a `queued` job, runs
it, and finishes it in one script that also pushes the wake-up and queues the webhook. Redis
going away is a 503 for new work (nothing is queued); what was queued or running waits,
retrying its Redis writes, and carries on when Redis is back (with `appendonly yes`, a restart
keeps the streams, groups and states). Why not a job library: arq polls Redis (0.5 s by
default, for jobs and for results) and re-runs a job whose in-progress key expired, which is
neither the latency nor the at-most-once start this needs; Streams give both directly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from sandgate.dispatch import _scripts as keys
from sandgate.dispatch._retry import REDIS_DOWN, until_redis_answers
from sandgate.dispatch.base import (
    Dispatcher,
    ExecutionState,
    Failure,
    Job,
    JobHandler,
    LostHandler,
    QueueFull,
    QueueStats,
    QueueUnavailable,
    WebhookState,
    WorkerInfo,
)
from sandgate.dispatch.consumer import Heartbeat, StreamWorker, consumer_name, live_consumers
from sandgate.dispatch.webhooks import Webhooks
from sandgate.metrics import Metrics
from sandgate.models import ExecuteResponse

__all__ = ["RedisDispatcher", "state_of"]

log = structlog.get_logger(__name__)
BUSY = Failure(type="busy", message="no worker started the execution in time", status_code=429)
DELIVERERS = 4


def state_of(execution_id: str, fields: Mapping[Any, Any]) -> ExecutionState | None:
    """An execution's state from its hash (None when it has none)."""
    if not fields:
        return None
    times = ("queued_at", "started_at", "finished_at")
    number = {k: float(fields[k]) for k in times if k in fields}
    return ExecutionState(
        execution_id=execution_id,
        status=fields["status"],
        response=ExecuteResponse.model_validate_json(fields["response"])
        if "response" in fields
        else None,
        error=Failure.model_validate_json(fields["error"]) if "error" in fields else None,
        webhook=WebhookState.model_validate_json(fields["webhook"])
        if "webhook" in fields
        else None,
        tenant=fields.get("tenant", ""),
        **number,
    )


@contextmanager
def _engine() -> Iterator[None]:
    """Redis being away, as the dispatcher's QueueUnavailable (503: nothing was done)."""
    try:
        yield
    except REDIS_DOWN as exc:
        raise QueueUnavailable(f"the queue (Redis) is unavailable: {type(exc).__name__}") from None


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
        self._start = self.redis.register_script(keys.START)
        self._finish = self.redis.register_script(keys.FINISH)
        self._cancel = self.redis.register_script(keys.CANCEL)
        self._workers: list[StreamWorker] = []
        self._maintenance: asyncio.Task[None] | None = None
        self._heartbeat = Heartbeat(self.redis, self.consumer, dead_after_s)
        self._run: JobHandler | None = None
        self._lost: LostHandler | None = None
        self._closing = False

    async def open(self, run: JobHandler | None, lost: LostHandler | None) -> None:
        """Take jobs (and deliver webhooks) when handlers are given; API nodes only submit."""
        if run is None or lost is None:
            return
        self._run, self._lost = run, lost
        beat = self._heartbeat
        self._workers = [
            StreamWorker(self.redis, keys.JOBS, "workers", beat, self.capacity, self._on_job),
            StreamWorker(
                self.redis, keys.DELIVERIES, "deliverers", beat, DELIVERERS, self._on_hook
            ),
        ]
        for worker in self._workers:
            worker.start()
        self._maintenance = asyncio.create_task(self._maintain())

    async def close(self) -> None:
        """Stop taking work, let running jobs finish within the grace (still heartbeating, so
        nobody takes them over meanwhile), then disconnect."""
        self._closing = True
        await asyncio.gather(*(w.stop(self.grace_s) for w in self._workers))
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
        if self._workers:
            await self._heartbeat.stop()
        if self.webhooks is not None:
            await self.webhooks.close()
        await self.redis.aclose()

    async def _maintain(self) -> None:
        """Heartbeat and take over dead consumers' entries, every third of `dead_after`."""
        period = min(1.0, self.dead_after_ms / 3000)
        while True:
            try:
                await self._heartbeat.beat(self._workers[0].running, self.capacity)
                for worker in self._workers if not self._closing else ():
                    await worker.take_over()
            except REDIS_DOWN as exc:
                log.warning("queue.heartbeat_failed", error=type(exc).__name__)
            except Exception as exc:  # a stopped heartbeat would get this node declared dead
                log.error("queue.maintenance_failed", exc_info=exc)
            await asyncio.sleep(period)

    # The API node's side.

    async def submit(self, job: Job) -> ExecutionState:
        """Queue `job` unless the queue is at its cap."""
        with _engine():
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

    async def call(self, job: Job, *, start_within: float, finish_within: float) -> ExecutionState:
        """Queue `job` and wait for it; cancel it if no worker started it within `start_within`."""
        state = await self.submit(job)
        start_by = time.monotonic() + start_within
        end_by = start_by + finish_within
        while True:
            now = time.monotonic()
            deadline = start_by if state.status == "queued" and now < start_by else end_by
            state = await self._wait(job.execution_id, deadline - now) or state
            if state.terminal:
                return state
            now = time.monotonic()
            if state.status == "queued" and now >= start_by and await self._cancelled(job):
                return state.model_copy(update={"status": "failed", "error": BUSY})
            if now >= end_by:
                return state

    async def _wait(self, execution_id: str, timeout: float) -> ExecutionState | None:
        """The state after its wake-up (which carries the answer) or `timeout`; None while
        Redis is away."""
        try:
            wake = keys.done_key(execution_id)
            woken = await self.redis.blpop([wake], timeout=min(2.0, max(0.01, timeout)))
            if woken is None:
                return await self.get(execution_id)
            status, field, payload = cast(Any, woken)[1].split(" ", 2)
            return state_of(execution_id, {"status": status, field: payload})
        except (*REDIS_DOWN, QueueUnavailable):
            await asyncio.sleep(min(0.5, max(0.0, timeout)))
            return None

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
        with _engine():
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.exec_key(state.execution_id), mapping=fields)
                pipe.expire(keys.exec_key(state.execution_id), self.ttl_s)
                if webhook_url:
                    pipe.xadd(keys.DELIVERIES, {"id": state.execution_id})
                await pipe.execute()

    async def get(self, execution_id: str) -> ExecutionState | None:
        """The execution's state from its hash."""
        with _engine():
            fields = await self.redis.hgetall(keys.exec_key(execution_id))
        return state_of(execution_id, fields)

    async def dead_letters(self, tenant: str | None, limit: int) -> list[ExecutionState]:
        """Dead-lettered executions, newest first."""
        key = keys.DEAD if tenant is None else keys.dead_key(tenant)
        with _engine():
            ids = [str(i) for i in await self.redis.zrevrange(key, 0, limit - 1)]
        found = [await self.get(i) for i in ids]
        return [state for state in found if state is not None]

    async def stats(self) -> QueueStats:
        """Depth and oldest wait of the queue, and the live workers."""
        with _engine():
            depth = await self.redis.zcard(keys.QUEUED)
            oldest: Any = await self.redis.zrange(keys.QUEUED, 0, 0, withscores=True)
            live = await live_consumers(self.redis, self.dead_after_ms)
        return QueueStats(
            depth=depth,
            oldest_wait_s=max(0.0, time.time() - oldest[0][1]) if oldest else 0.0,
            workers=[WorkerInfo(**info, heartbeat_age_s=age) for info, age in live],
        )

    # The worker's side.

    async def _on_job(self, execution_id: str, lost_from: str | None) -> None:
        started = await until_redis_answers(
            lambda: self._start(
                keys=[keys.exec_key(execution_id), keys.QUEUED],
                args=[execution_id, self.consumer, time.time(), lost_from or ""],
            )
        )
        verdict = started[0]
        if verdict == "skip" or self._run is None or self._lost is None:
            return
        job = Job.model_validate_json(started[1])
        if verdict == "run":
            self.metrics.queue_wait.observe(max(0.0, time.time() - float(started[2])))
            outcome = await self._run(job)
        else:
            assert lost_from is not None
            outcome = await self._lost(job, lost_from.split(":")[0])
        answered = isinstance(outcome, ExecuteResponse)
        field, status = ("response", "done") if answered else ("error", "failed")
        payload = outcome.model_dump_json()
        finished = await until_redis_answers(
            lambda: self._finish(
                keys=[keys.exec_key(execution_id), keys.done_key(execution_id), keys.DELIVERIES],
                args=[self.consumer, status, field, payload, time.time(), self.ttl_s, execution_id],
            )
        )
        if not finished:
            log.warning("execution.superseded", execution_id=execution_id)

    async def _on_hook(self, execution_id: str, lost_from: str | None) -> None:
        state = await until_redis_answers(lambda: self.redis.hgetall(keys.exec_key(execution_id)))
        url = str(state.get("webhook_url") or "")
        current = state_of(execution_id, state)
        if current is None or not url or self.webhooks is None:
            return
        if current.webhook is not None and current.webhook.state != "pending":
            return  # delivered (or dead) before its deliverer died
        outcome = await self.webhooks.deliver(url, current.model_copy(update={"webhook": None}))
        self.metrics.webhooks.labels(outcome.state).inc()
        now = time.time()

        async def store() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.exec_key(execution_id), "webhook", outcome.model_dump_json())
                if outcome.state == "dead":
                    for key in (keys.DEAD, keys.dead_key(current.tenant)):
                        pipe.zadd(key, {execution_id: now})
                        pipe.zremrangebyscore(key, 0, now - self.ttl_s)
                await pipe.execute()

        await until_redis_answers(store)
