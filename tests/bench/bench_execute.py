"""`/execute` latency and throughput on the runsc backend, against a bare python3 subprocess."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.bench._stats import summary
from tests.conftest import ADMIN_KEY, SHARED_IMAGES
from tests.helpers import LiveServer, start_server

RUNS = 50
THROUGHPUT_RUNS = 24


def _state_dir() -> Path:
    state = Path(tempfile.mkdtemp(prefix="sandgate-bench-"))
    (state / "images").symlink_to(SHARED_IMAGES)
    return state


def _timed_execute(live: LiveServer) -> float:
    with live.client() as client:
        started = time.perf_counter()
        response = client.post("/execute", json={"code": "print(1)"})
        elapsed = time.perf_counter() - started
    assert response.json()["status"] == "ok", response.text
    return elapsed


def _timed_subprocess() -> float:
    started = time.perf_counter()
    subprocess.run(["python3", "-c", "print(1)"], check=True, capture_output=True)
    return time.perf_counter() - started


def _throughput(live: LiveServer, workers: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda _: _timed_execute(live), range(THROUGHPUT_RUNS)))
    return THROUGHPUT_RUNS / (time.perf_counter() - started)


def run() -> None:
    """Print p50/p95 of /execute vs a bare subprocess, then sequential and 4-way throughput."""
    env = {
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_MAX_CONCURRENCY": "4",
        "SANDGATE_QUEUE_TIMEOUT_S": "120",
        "SANDGATE_LOG_LEVEL": "warning",
    }
    with start_server(_state_dir(), env) as live:
        _timed_execute(live)  # warm-up: first sandbox pays for cold page cache
        api = [_timed_execute(live) for _ in range(RUNS)]
        bare = [_timed_subprocess() for _ in range(RUNS)]
        (a50, a95), (b50, b95) = summary(api), summary(bare)
        print(f"print(1) over {RUNS} runs        p50 ms   p95 ms")
        print(f"  POST /execute (runsc)      {a50:7.1f}  {a95:7.1f}")
        print(f"  python3 -c subprocess      {b50:7.1f}  {b95:7.1f}")
        print(f"  ratio                      {a50 / b50:7.1f}x {a95 / b95:7.1f}x")
        seq = _throughput(live, 1)
        par = _throughput(live, 4)
        print(f"throughput ({THROUGHPUT_RUNS} executions, {sys.platform})")
        print(f"  sequential                 {seq:7.2f} exec/s")
        print(f"  4-way concurrent           {par:7.2f} exec/s  ({par / seq:.2f}x)")
