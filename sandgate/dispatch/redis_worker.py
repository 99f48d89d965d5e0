"""The worker's side of the Redis dispatcher: take jobs, run them, finish them; deliver webhooks.

Each job is started by one script (only from `queued`; or taken over from a dead consumer as
`lost`), run by the node's handler, and finished by another (which also wakes its waiter and
queues its webhook). Every Redis write is retried until Redis answers: what ran is never
dropped. Heartbeats and the take-over of dead consumers' entries run every third of
`dead_after`; a closing worker keeps heartbeating while its running jobs finish.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from sandgate.dispatch import _scripts as keys
from sandgate.dispatch._hashes import state_of
from sandgate.dispatch._retry import REDIS_DOWN, until_redis_answers
from sandgate.dispatch.base import JobHandler, LostHandler
from sandgate.dispatch.consumer import StreamWorker
from sandgate.dispatch.events import EventsWriter
from sandgate.models import ExecuteResponse
from sandgate.pipeline.job import Job

if TYPE_CHECKING:
    from sandgate.dispatch.streams import RedisDispatcher

__all__ = ["RedisWorker"]

log = structlog.get_logger(__name__)
DELIVERERS = 4


class RedisWorker:
    """A worker node's readers of the job and delivery streams, and its heartbeat."""

    def __init__(self, dispatch: RedisDispatcher, run: JobHandler, lost: LostHandler) -> None:
        self.dispatch = dispatch
        self.redis = dispatch.redis
        self.consumer = dispatch.consumer
        self._run = run
        self._lost = lost
        self._start = self.redis.register_script(keys.START)
        self._finish = self.redis.register_script(keys.FINISH)
        beat = dispatch.heartbeat
        self._heartbeat = beat
        self._streams = [
            StreamWorker(self.redis, keys.JOBS, "workers", beat, dispatch.capacity, self._on_job),
            StreamWorker(
                self.redis, keys.DELIVERIES, "deliverers", beat, DELIVERERS, self._on_hook
            ),
        ]
        self._loops: list[asyncio.Task[None]] = []
        self._closing = False

    def start(self) -> None:
        """Start reading, heartbeating and taking over."""
        for stream in self._streams:
            stream.start()
        self._loops = [
            asyncio.create_task(self._every_beat(self._beat)),
            asyncio.create_task(self._every_beat(self._take_over)),
        ]

    async def close(self) -> None:
        """Stop reading; running jobs finish within the grace while the heartbeat goes on."""
        self._closing = True
        await asyncio.gather(*(s.stop(self.dispatch.grace_s) for s in self._streams))
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        await self._heartbeat.stop()

    async def _beat(self) -> None:
        await self._heartbeat.beat(self._streams[0].running, self.dispatch.capacity)

    async def _take_over(self) -> None:
        for stream in self._streams if not self._closing else ():
            await stream.take_over()

    async def _every_beat(self, work: Callable[[], Awaitable[None]]) -> None:
        """`work` every third of `dead_after`, each loop on its own: a slow take-over never
        delays the heartbeat (a late one would get this live node declared dead)."""
        while True:
            try:
                await work()
            except REDIS_DOWN as exc:
                self._heartbeat.redis_was_away()
                log.warning("queue.maintenance_failed", error=type(exc).__name__)
            except Exception as exc:
                log.error("queue.maintenance_failed", exc_info=exc)
            await asyncio.sleep(self._heartbeat.period_s)

    async def _on_job(self, execution_id: str, lost_from: str | None) -> None:
        started = await until_redis_answers(
            lambda: self._start(
                keys=[keys.exec_key(execution_id), keys.QUEUED],
                args=[execution_id, self.consumer, time.time(), lost_from or ""],
            )
        )
        verdict = started[0]
        if verdict == "skip":
            return
        job = Job.model_validate_json(started[1])
        if verdict == "run":
            self.dispatch.metrics.dispatch_wait.observe(max(0.0, time.time() - float(started[2])))
            relay = EventsWriter(self.redis, execution_id) if job.stream else None
            outcome = await self._run(job, relay)
        else:
            assert lost_from is not None
            outcome = await self._lost(job, lost_from.split(":")[0])
        answered = isinstance(outcome, ExecuteResponse)
        field, status = ("response", "done") if answered else ("error", "failed")
        payload, ttl = outcome.model_dump_json(), self.dispatch.ttl_s
        finished = await until_redis_answers(
            lambda: self._finish(
                keys=[keys.exec_key(execution_id), keys.events_key(execution_id), keys.DELIVERIES],
                args=[
                    self.consumer,
                    status,
                    field,
                    payload,
                    time.time(),
                    ttl,
                    execution_id,
                ],
            )
        )
        if not finished:
            log.warning("execution.superseded", execution_id=execution_id)

    async def _on_hook(self, execution_id: str, lost_from: str | None) -> None:
        state = await until_redis_answers(lambda: self.redis.hgetall(keys.exec_key(execution_id)))
        url = str(state.get("webhook_url") or "")
        current = state_of(execution_id, state)
        if current is None or not url or self.dispatch.webhooks is None:
            return
        if current.webhook is not None and current.webhook.state != "pending":
            return  # delivered (or dead) before its deliverer died
        outcome = await self.dispatch.webhooks.deliver(
            url, current.model_copy(update={"webhook": None})
        )
        self.dispatch.metrics.webhooks.labels(outcome.state).inc()
        now = time.time()

        async def store() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(keys.exec_key(execution_id), "webhook", outcome.model_dump_json())
                if outcome.state == "dead":
                    for key in (keys.DEAD, keys.dead_key(current.tenant)):
                        pipe.zadd(key, {execution_id: now})
                        pipe.zremrangebyscore(key, 0, now - self.dispatch.ttl_s)
                await pipe.execute()

        await until_redis_answers(store)
