"""Dispatch: how an execution the API node admitted reaches the sandbox that runs it.

An API node admits the request (its code screened) and hands the `Job` to a `Dispatcher`; a
worker takes it, runs it, screens the output, writes the audit record and stores the
`ExecutionState` the API node relays (or the client polls, or a webhook receives). Two
dispatchers implement this one interface: Redis Streams shared by many nodes
(`streams.RedisDispatcher`) and an in-process queue for the single-process role `all` without
Redis (`local.LocalDispatcher`).

States: `queued` (waiting for a worker) -> `running` (a worker started it) -> `done` (it has an
answer, whatever its execution status) or `failed` (it could not be carried out: no worker in
time, a part down). A job is run at most once: only a `queued` job is ever started, and a
`running` job whose worker died ends `done` with `sandbox_error` ("worker lost").
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from sandgate.models import ExecuteResponse
from sandgate.pipeline.job import Job

__all__ = [
    "BUSY",
    "Dispatcher",
    "ExecutionState",
    "Failure",
    "JobHandler",
    "LostHandler",
    "QueueFull",
    "QueueStats",
    "QueueUnavailable",
    "Relay",
    "WebhookState",
    "WorkerInfo",
]

Status = Literal["queued", "running", "done", "failed"]


class Failure(BaseModel):
    """Why an execution (or a session call) could not be carried out: the error answer it
    stands for."""

    type: str
    message: str
    status_code: int
    details: list[dict[str, Any]] | None = None
    headers: dict[str, str] | None = None


class WebhookState(BaseModel):
    """Where the answer's delivery stands."""

    state: Literal["pending", "delivered", "dead"]
    attempts: int = 0
    last_error: str | None = None


class ExecutionState(BaseModel):
    """`GET /executions/{id}`, and the body a webhook receives."""

    execution_id: str
    status: Status
    response: ExecuteResponse | None = None
    error: Failure | None = None
    webhook: WebhookState | None = None
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    tenant: str = Field("", exclude=True, description="Whose it is; never sent.")

    @property
    def terminal(self) -> bool:
        """Whether it has its answer (`done`) or never will (`failed`)."""
        return self.status in ("done", "failed")


class WorkerInfo(BaseModel):
    """A live worker as its last heartbeat described it."""

    name: str
    pid: int
    consumer: str = Field("", description="Its name in the queue: where its sessions' calls go.")
    running: int = Field(description="Executions it runs now.")
    capacity: int = Field(description="Executions it runs at once at most.")
    heartbeat_age_s: float


class QueueStats(BaseModel):
    """What `/metrics` and `/ready` show of the queue."""

    depth: int = Field(description="Executions waiting to start.")
    oldest_wait_s: float = Field(description="How long the oldest of them has waited.")
    workers: list[WorkerInfo]


BUSY = Failure(type="busy", message="no worker started the execution in time", status_code=429)


class QueueFull(Exception):
    """The queue holds its cap of waiting executions (429)."""


class QueueUnavailable(Exception):
    """The queue's engine cannot be reached (503); nothing was queued."""


class Relay(Protocol):
    """Where a streamed execution's output lines go as screening releases them."""

    async def relay(self, line: bytes) -> None:
        """One NDJSON line of output (`stdout`/`stderr`)."""

    async def withhold(self) -> None:
        """Screening blocked the output: nothing more of it goes out."""


Outcome = ExecuteResponse | Failure
JobHandler = Callable[[Job, Relay | None], Awaitable[Outcome]]
LostHandler = Callable[[Job, str], Awaitable[ExecuteResponse]]


class Dispatcher(abc.ABC):
    """Queues jobs, hands them to workers, keeps their states and dead letters."""

    name: str
    consumer: str  # this node's name among the workers (where calls to its sessions go)

    @abc.abstractmethod
    async def open(self, run: JobHandler | None, lost: LostHandler | None) -> None:
        """Connect; with handlers, also take jobs as a worker (role `worker` or `all`)."""

    @abc.abstractmethod
    async def worker_dead(self, consumer: str) -> bool:
        """Whether the worker `consumer` is dead (its heartbeat stayed away; never this one)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop taking jobs and let running ones finish (within the caller's grace)."""

    @abc.abstractmethod
    async def submit(self, job: Job) -> ExecutionState:
        """Queue `job`; QueueFull over the cap, QueueUnavailable when the engine is down."""

    @abc.abstractmethod
    async def call(
        self, job: Job, *, start_within: float, finish_within: float, relay: Relay | None = None
    ) -> ExecutionState:
        """Queue `job` and wait for its state: `failed` (busy) if no worker started it within
        `start_within` s (it then never runs), and as it stands after `finish_within` more.
        With `relay` (a streamed job), its output lines are handed on as they come."""

    @abc.abstractmethod
    async def settle(self, state: ExecutionState, webhook_url: str | None) -> None:
        """Store a state the API node decided itself (code blocked) and deliver its webhook."""

    @abc.abstractmethod
    async def get(self, execution_id: str) -> ExecutionState | None:
        """The execution's state, None if unknown or expired."""

    @abc.abstractmethod
    async def dead_letters(self, tenant: str | None, limit: int) -> list[ExecutionState]:
        """Executions whose webhook could not be delivered, newest first (all tenants: None)."""

    @abc.abstractmethod
    async def stats(self) -> QueueStats:
        """Depth, oldest wait and live workers; QueueUnavailable when the engine is down."""
