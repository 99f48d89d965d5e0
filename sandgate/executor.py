"""The host-wide cap on sandboxes at work, and the backend: a run (or a session's execution)
happens only while it holds a slot.

Everything about what to run and under which limits is decided before (`sandgate.pipeline`);
the executor only waits for a slot (429 `busy` when none frees up within the queue wait), runs
on the backend (503 when the backend cannot start a sandbox) and counts the outcome.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import structlog
from opentelemetry import trace

from sandbox.base import (
    ExecutionResult,
    ExecutionSpec,
    OutputSink,
    SandboxBackend,
    SandboxUnavailable,
)
from sandbox.slots import NoSlot, SandboxSlots
from sandgate.errors import Busy, Unavailable
from sandgate.metrics import Metrics
from sandgate.tracing import span, start_span

__all__ = ["Executor"]

log = structlog.get_logger(__name__)


class Executor:
    """Runs on a backend within a host-wide cap on sandboxes at work."""

    def __init__(self, backend: SandboxBackend, slots: SandboxSlots, metrics: Metrics) -> None:
        self.backend = backend
        self.slots = slots
        self.metrics = metrics

    def _waited(self, waiting: trace.Span, started: float) -> None:
        """The wait for a slot is over (a slot, or none in time): its span and histogram."""
        waiting.end()
        self.metrics.queue_wait_seconds.observe(time.monotonic() - started)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot; Busy (429) when none frees up in time, Unavailable (503) when the
        backend cannot start a sandbox inside."""
        waiting, started = start_span("sandbox.queue_wait"), time.monotonic()
        try:
            async with self.slots.acquire():
                self._waited(waiting, started)
                with self.metrics.sandboxes_running.track_inprogress():
                    yield
        except NoSlot:
            self._waited(waiting, started)
            self.metrics.refused.labels("busy").inc()
            raise Busy(
                f"all {self.slots.count} sandboxes are busy; retry later",
                headers={"Retry-After": str(max(1, round(self.slots.wait_s)))},
            ) from None
        except SandboxUnavailable as exc:
            raise Unavailable(str(exc)) from None

    def counted(self, result: ExecutionResult, execution_id: str) -> ExecutionResult:
        """Count and log an execution's outcome."""
        self.metrics.executions.labels(result.status.value).inc()
        self.metrics.execution_seconds.observe(result.wall_ms / 1000)
        self.metrics.execution_cpu_seconds.observe(result.cpu_ms / 1000)
        log.info(
            "execute.done",
            execution_id=execution_id,
            status=result.status.value,
            exit_code=result.exit_code,
            wall_ms=result.wall_ms,
        )
        return result

    async def run(
        self, spec: ExecutionSpec, *, policy: str, on_output: OutputSink | None = None
    ) -> ExecutionResult:
        """Run `spec` in a fresh sandbox, in a slot."""
        async with self.slot():
            log.info("execute.start", execution_id=spec.execution_id, policy=policy)
            with span("sandbox.run", execution_id=spec.execution_id, backend=self.backend.name):
                result = await self.backend.run(spec, on_output)
        return self.counted(result, spec.execution_id)
