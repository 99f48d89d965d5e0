"""Prometheus metrics of one service process (scraped at `/metrics` with an API key)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]


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
            "Wall time of executions, sandbox start-up included.",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.sandboxes_running = Gauge(
            "sandgate_sandboxes_running",
            "Sandboxes running now in this process.",
            registry=self.registry,
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
        self.policy_reloads = Counter(
            "sandgate_policy_reloads_total",
            "Policy reloads by result.",
            ["result"],
            registry=self.registry,
        )
