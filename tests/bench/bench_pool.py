"""Sustained `/execute` throughput with the warm pool on and off, then latency at half of it.

Saturation: closed-loop clients (twice the host's sandbox cap, so no slot waits for a request)
run `print(1)` for a fixed count; executions per second. A sandbox started ahead costs about the
CPU a cold one does, so a pool cannot add capacity: the target is that it takes none away
(>= 90 % of pool off). Then open-loop arrivals at random (Poisson) times at half the pool-off
rate, the same schedule for both services: p50/p95 latency, where the pool is meant to help.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from tests.bench._stats import summary
from tests.bench.bench_execute import PRINT, Client, services

SATURATION_RUNS = 48
HALF_RATE_RUNS = 60


def saturate(client: Client, callers: int) -> float:
    """Executions per second with `callers` closed-loop callers."""
    left = [SATURATION_RUNS]
    lock = threading.Lock()

    def caller(_: int) -> None:
        own = client.another()
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            own.execute(PRINT)

    started = time.perf_counter()
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(caller, range(callers)))
    return SATURATION_RUNS / (time.perf_counter() - started)


def at_rate(client: Client, gaps: list[float]) -> list[float]:
    """Latencies of requests sent at the given gaps (open loop: nobody waits for an answer)."""
    local = threading.local()

    def call(sent_at: float) -> float:
        if not hasattr(local, "client"):
            local.client = client.another()
        own: Client = local.client
        own.execute(PRINT)
        return time.perf_counter() - sent_at

    futures = []
    with ThreadPoolExecutor(32) as pool:
        for gap in gaps:
            time.sleep(gap)
            futures.append(pool.submit(call, time.perf_counter()))
        return [f.result() for f in futures]


def run() -> None:
    """Saturation throughput pool on vs off, then p50/p95 at half the pool-off rate."""
    cap = max(1, os.cpu_count() or 1)
    with services() as (on, off):
        on.wait_pool()
        for client in (on, off):
            client.execute(PRINT)
        before = on.claims()
        rates = {"off": saturate(off, 2 * cap), "on": saturate(on, 2 * cap)}
        hits = on.claims()["hit"] - before["hit"]
        print(f"saturation, {SATURATION_RUNS} print(1), {2 * cap} clients, cap {cap}")
        print(f"  pool off  {rates['off']:6.2f} exec/s")
        print(
            f"  pool on   {rates['on']:6.2f} exec/s  ({rates['on'] / rates['off']:.0%} of off;"
            " target >= 90 %)"
        )
        rate = rates["off"] / 2
        gaps = [random.expovariate(rate) for _ in range(HALF_RATE_RUNS)]
        on.wait_pool()
        before = on.claims()
        latencies = {"on": at_rate(on, gaps), "off": at_rate(off, gaps)}
        hits = on.claims()["hit"] - before["hit"]
        print(
            f"random arrivals at {rate:.2f}/s (half the pool-off rate), {HALF_RATE_RUNS} each;"
            f" pool on: {hits:.0f} hits"
        )
        for kind in ("on", "off"):
            p50, p95 = summary(latencies[kind])
            print(f"  pool {kind:3s}  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms")
