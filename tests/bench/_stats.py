"""Small statistics helpers shared by the benchmarks."""

from __future__ import annotations

import statistics

__all__ = ["percentile", "summary"]


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    return statistics.quantiles(ordered, n=100, method="inclusive")[max(0, min(98, int(q) - 1))]


def summary(samples_s: list[float]) -> tuple[float, float]:
    """(p50, p95) in milliseconds."""
    return percentile(samples_s, 50) * 1000, percentile(samples_s, 95) * 1000
