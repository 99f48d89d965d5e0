"""The dispatcher of a single process (role `all` without Redis): an asyncio queue in memory.

The same states and rules as the Redis dispatcher (a job starts only from `queued`; the cap
is a 429), but nothing survives the process: executions queued or running when it stops are
gone with it (their audit records, once written, stay). Use Redis for anything that must.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

from sandgate.dispatch.base import (
    BUSY,
    Dispatcher,
    ExecutionState,
    JobHandler,
    LostHandler,
    QueueFull,
    QueueStats,
    Relay,
    WebhookState,
    WorkerInfo,
)
from sandgate.dispatch.webhooks import Webhooks
from sandgate.metrics import Metrics
from sandgate.models import ExecuteResponse
from sandgate.pipeline.job import Job

__all__ = ["LocalDispatcher"]


class LocalDispatcher(Dispatcher):
    """Jobs in an asyncio queue, run by `capacity` tasks of this process."""

    name = "local"

    def __init__(
        self,
        *,
        node: str,
        capacity: int,
        max_depth: int,
        ttl_s: int,
        webhooks: Webhooks | None,
        metrics: Metrics,
    ) -> None:
        self.node = node
        self.consumer = node
        self.capacity = capacity
        self.max_depth = max_depth
        self.ttl_s = ttl_s
        self.webhooks = webhooks
        self.metrics = metrics
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._states: OrderedDict[str, ExecutionState] = OrderedDict()
        self._jobs: dict[str, Job] = {}
        self._relays: dict[str, Relay] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self._dead: list[str] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._run: JobHandler | None = None
        self.running = 0

    async def open(self, run: JobHandler | None, lost: LostHandler | None) -> None:
        """Start `capacity` runners (a single process has no lost workers to take over)."""
        self._run = run
        for _ in range(self.capacity if run else 0):
            self._spawn(self._runner())

    async def worker_dead(self, consumer: str) -> bool:
        """Never: this process is the only worker, and it is alive."""
        return False

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop the runners and deliveries: what they were doing is lost with the process."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.webhooks is not None:
            await self.webhooks.close()

    def _forget_old(self) -> None:
        cutoff = time.time() - self.ttl_s
        while self._states:
            oldest = next(iter(self._states.values()))
            if oldest.terminal and (oldest.finished_at or 0) < cutoff:
                self._states.popitem(last=False)
                self._ended.pop(oldest.execution_id, None)
                continue
            break

    async def submit(self, job: Job) -> ExecutionState:
        """Queue `job` unless the queue is at its cap."""
        self._forget_old()
        if self._queue.qsize() >= self.max_depth:
            raise QueueFull(f"{self.max_depth} executions are waiting already")
        state = ExecutionState(
            execution_id=job.execution_id,
            status="queued",
            queued_at=job.queued_at,
            tenant=job.key.tenant,
            webhook=WebhookState(state="pending") if job.webhook_url else None,
        )
        self._states[job.execution_id] = state
        self._jobs[job.execution_id] = job
        self._ended[job.execution_id] = asyncio.Event()
        self._queue.put_nowait(job.execution_id)
        return state

    async def call(
        self, job: Job, *, start_within: float, finish_within: float, relay: Relay | None = None
    ) -> ExecutionState:
        """Queue `job` and wait; cancel it if no runner started it within `start_within`."""
        if relay is not None:
            self._relays[job.execution_id] = relay
        await self.submit(job)
        ended = self._ended[job.execution_id]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), start_within)
        state = self._states[job.execution_id]
        if state.status == "queued":
            return self._end(job.execution_id, status="failed", error=BUSY)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), finish_within)
        return self._states[job.execution_id]

    def _end(self, execution_id: str, **update: object) -> ExecutionState:
        state = self._states[execution_id].model_copy(update={"finished_at": time.time(), **update})
        self._states[execution_id] = state
        self._jobs.pop(execution_id, None)
        self._relays.pop(execution_id, None)
        self._ended[execution_id].set()
        return state

    async def settle(self, state: ExecutionState, webhook_url: str | None) -> None:
        """Keep an answer the API side gave itself, and deliver its webhook."""
        self._states[state.execution_id] = state.model_copy(
            update={"webhook": WebhookState(state="pending") if webhook_url else None}
        )
        self._ended[state.execution_id] = asyncio.Event()
        self._ended[state.execution_id].set()
        if webhook_url:
            self._spawn(self._deliver(state.execution_id, webhook_url))

    async def _runner(self) -> None:
        assert self._run is not None
        while True:
            execution_id = await self._queue.get()
            state = self._states.get(execution_id)
            job = self._jobs.get(execution_id)
            if state is None or job is None or state.status != "queued":
                continue
            started = time.time()
            self._states[execution_id] = state.model_copy(
                update={"status": "running", "started_at": started}
            )
            self.metrics.dispatch_wait.observe(max(0.0, started - job.queued_at))
            self.running += 1
            try:
                outcome = await self._run(job, self._relays.get(execution_id))
            finally:
                self.running -= 1
            if isinstance(outcome, ExecuteResponse):
                self._end(execution_id, status="done", response=outcome)
            else:
                self._end(execution_id, status="failed", error=outcome)
            if job.webhook_url:
                self._spawn(self._deliver(execution_id, job.webhook_url))

    async def _deliver(self, execution_id: str, url: str) -> None:
        if self.webhooks is None:
            return
        state = self._states[execution_id]
        outcome = await self.webhooks.deliver(url, state.model_copy(update={"webhook": None}))
        self.metrics.webhooks.labels(outcome.state).inc()
        self._states[execution_id] = self._states[execution_id].model_copy(
            update={"webhook": outcome}
        )
        if outcome.state == "dead":
            self._dead.append(execution_id)

    async def get(self, execution_id: str) -> ExecutionState | None:
        """The execution's state, if this process still has it."""
        return self._states.get(execution_id)

    async def dead_letters(self, tenant: str | None, limit: int) -> list[ExecutionState]:
        """Dead-lettered executions, newest first."""
        found = [self._states[i] for i in reversed(self._dead) if i in self._states]
        return [s for s in found if tenant is None or s.tenant == tenant][:limit]

    async def stats(self) -> QueueStats:
        """Depth and oldest wait of the queue; this process as the one worker."""
        waiting = [s.queued_at or 0 for s in self._states.values() if s.status == "queued"]
        me = WorkerInfo(
            name=self.node,
            consumer=self.consumer,
            pid=os.getpid(),
            running=self.running,
            capacity=self.capacity,
            heartbeat_age_s=0.0,
        )
        return QueueStats(
            depth=len(waiting),
            oldest_wait_s=max(0.0, time.time() - min(waiting)) if waiting else 0.0,
            workers=[me],
        )
