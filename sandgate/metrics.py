"""Prometheus metrics of the service (scraped at `/metrics` with an API key).

With one worker the counters live in the process. With several (`SANDGATE_WORKERS`), `serve`
points prometheus_client's multiprocess mode at `<state_dir>/metrics` before the workers
start: each worker writes its values to files there and a scrape, whichever worker answers
it, sums them all.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

__all__ = ["Metrics", "share_metrics"]

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def share_metrics(directory: Path) -> None:
    """Make the workers started after this call share their metrics through `directory`.

    Emptied first: files of an earlier run would be summed in, since prometheus_client keys
    them by process id only.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[_MULTIPROC_ENV] = str(directory)


def _shared() -> bool:
    return _MULTIPROC_ENV in os.environ


class Metrics:
    """The service's counters, on a registry of its own (one per app, so tests stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.executions = Counter(
            "sandgate_executions_total",
            "Executions by outcome status.",
            ["status"],
            registry=self.registry,
        )
        self.execution_seconds = Histogram(
            "sandgate_execution_seconds",
            "Wall time of executions, from when the code is handed over to its sandbox.",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.sandboxes_running = Gauge(
            "sandgate_sandboxes_running",
            "Sandboxes running now in this service (all workers).",
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.refused = Counter(
            "sandgate_refused_total",
            "Requests refused before running, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.screenings = Counter(
            "sandgate_screenings_total",
            "Screening verdicts by stage.",
            ["stage", "verdict"],
            registry=self.registry,
        )
        self.dispatch_wait = Histogram(
            "sandgate_dispatch_wait_seconds",
            "Time executions waited in the dispatch queue before a worker started them.",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.webhooks = Counter(
            "sandgate_webhook_deliveries_total",
            "Webhook deliveries by outcome (`delivered`, `dead`).",
            ["result"],
            registry=self.registry,
        )
        self.pool_ready_sandboxes = Gauge(
            "sandgate_pool_ready",
            "Sandboxes started ahead and ready, by class (all workers: each has its own pool).",
            ["class"],
            registry=self.registry,
            multiprocess_mode="livesum",
        )
        self.pool_claims = Counter(
            "sandgate_pool_claims_total",
            "Executions that found a ready sandbox (hit) or started one cold (miss).",
            ["result"],
            registry=self.registry,
        )
        self.policy_reloads = Counter(
            "sandgate_policy_reloads_total",
            "Policy reloads by result.",
            ["result"],
            registry=self.registry,
        )

        self.execution_cpu_seconds = Histogram(
            "sandgate_execution_cpu_seconds",
            "CPU-seconds of each execution (`cpu_ms`): the cost of a task; sum/count is the "
            "cost per execution.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.requests = Counter(
            "sandgate_requests_total",
            "Answered requests by route template and status code.",
            ["route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "sandgate_request_seconds",
            "Time to answer, by route template.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.step_seconds = Histogram(
            "sandgate_step_seconds",
            "Time of each traced step of a request (auth, policy.resolve, screen.<stage>, "
            "detector.<name>, sandbox.queue_wait, sandbox.run, budget.charge, audit.commit).",
            ["step"],
            buckets=(0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "sandgate_queue_wait_seconds",
            "Time executions waited for a free sandbox slot (refused ones included).",
            buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        self.cpu_budget_tripped = Gauge(
            "sandgate_cpu_budget_tripped",
            "1 while the host's CPU breaker refuses new executions (open or half-open).",
            registry=self.registry,
            multiprocess_mode="max",
        )
        self.cpu_seconds_last_hour = Gauge(
            "sandgate_cpu_seconds_last_hour",
            "CPU-seconds of executions on this host in the trailing hour (breaker's view).",
            registry=self.registry,
            multiprocess_mode="max",
        )

    def cpu_budget_changed(self, state: str, used_s: float) -> None:
        """The CPU breaker moved: the alert gauge follows it."""
        self.cpu_budget_tripped.set(0 if state == "closed" else 1)
        self.cpu_seconds_last_hour.set(used_s)

    def pool_claimed(self, hit: bool) -> None:
        """Count one claim on the warm pool (the backend's `PoolObserver`)."""
        self.pool_claims.labels("hit" if hit else "miss").inc()

    def pool_ready(self, class_name: str, ready: int) -> None:
        """How many sandboxes of a class are ready in this worker."""
        self.pool_ready_sandboxes.labels(class_name).set(ready)

    def exposition(self) -> bytes:
        """The Prometheus text of this process, or of every worker when they share."""
        if not _shared():
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged)

    def close(self) -> None:
        """On a worker's exit: its `livesum` gauges stop counting (its counters stay)."""
        if _shared():
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
