"""The queue's gauges for `/metrics`: read fresh from its engine at each scrape, not counted."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.core import GaugeMetricFamily

from sandgate.dispatch.base import QueueStats

__all__ = ["queue_exposition"]


class _QueueCollector:
    """The queue as one scrape found it (not counters: read fresh from the queue's engine)."""

    def __init__(self, stats: QueueStats | None) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("sandgate_queue_up", "1 when the queue's engine answered.")
        up.add_metric([], 0 if self.stats is None else 1)
        yield up
        if self.stats is None:
            return
        depth = GaugeMetricFamily("sandgate_queue_depth", "Executions waiting to start.")
        depth.add_metric([], self.stats.depth)
        oldest = GaugeMetricFamily(
            "sandgate_queue_oldest_wait_seconds", "How long the oldest waiting one has waited."
        )
        oldest.add_metric([], self.stats.oldest_wait_s)
        load = GaugeMetricFamily(
            "sandgate_worker_load", "Executions a live worker runs now.", labels=["worker", "pid"]
        )
        capacity = GaugeMetricFamily(
            "sandgate_worker_capacity",
            "Executions it runs at once at most.",
            labels=["worker", "pid"],
        )
        age = GaugeMetricFamily(
            "sandgate_worker_heartbeat_age_seconds",
            "Seconds since the worker's last heartbeat.",
            labels=["worker", "pid"],
        )
        for worker in self.stats.workers:
            labels = [worker.name, str(worker.pid)]
            load.add_metric(labels, worker.running)
            capacity.add_metric(labels, worker.capacity)
            age.add_metric(labels, worker.heartbeat_age_s)
        yield from (depth, oldest, load, capacity, age)


def queue_exposition(stats: QueueStats | None) -> bytes:
    """The queue's gauges in Prometheus text (`sandgate_queue_up` 0 when it did not answer)."""
    registry = CollectorRegistry()
    registry.register(_QueueCollector(stats))
    return generate_latest(registry)
