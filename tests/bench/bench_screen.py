"""`POST /screen` over HTTP against the same texts screened in-process, in the same run.

The in-process figure is `Screener.screen` alone; the HTTP one adds FastAPI, JSON, auth, the
audit record's commit and the loopback round trip of a real uvicorn server. The latency client
is the standard library's keep-alive `http.client` (httpx alone costs ~2.5 ms a request here,
which would hide the service's own time). Then single-process throughput on 1 KB clean text.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from guards import GuardOptions, Screener, ScreeningConfig, Stage
from tests.bench._stats import summary
from tests.bench.bench_execute import _state_dir
from tests.bench.bench_guards import texts
from tests.conftest import ADMIN_KEY
from tests.helpers import start_server

ROUNDS = {"1 KB": 200, "10 KB": 40}
THROUGHPUT_CALLS = 400


def run() -> None:
    """Print p50/p95 of /screen over HTTP beside in-process screening, then throughput."""
    screener = Screener(GuardOptions(hash_secret="benchmark-only-secret"))
    screener.warm_up()
    loop = asyncio.new_event_loop()
    env = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_LOG_LEVEL": "warning"}
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    print(
        f"  {'text':16s} {'HTTP p50':>9s} {'p95':>7s} {'in-proc p50':>11s} {'p95':>7s}"
        f" {'overhead p50':>12s}"
    )
    with start_server(_state_dir(), env) as live:
        host, port = live.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)

        def post(body: bytes) -> None:
            conn.request("POST", "/screen", body, {**headers, "Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            assert response.status == 200, response.status

        for name, text in texts().items():
            rounds = ROUNDS[name.split(" ", 1)[1]]
            http_s: list[float] = []
            local_s: list[float] = []
            body = json.dumps({"text": text, "stage": "input"}).encode()
            post(body)  # warm the route
            for _ in range(rounds):
                started = time.perf_counter()
                post(body)
                http_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                loop.run_until_complete(
                    screener.screen(text, Stage.INPUT, ScreeningConfig(), tenant="b")
                )
                local_s.append(time.perf_counter() - started)
            (h50, h95), (l50, l95) = summary(http_s), summary(local_s)
            print(f"  {name:16s} {h50:9.1f} {h95:7.1f} {l50:11.1f} {l95:7.1f} {h50 - l50:+12.1f}")
        text = texts()["clean 1 KB"]

        def call(_: int) -> None:
            with httpx.Client(base_url=live.url, headers=headers, timeout=60) as own:
                for _ in range(THROUGHPUT_CALLS // 4):
                    own.post("/screen", json={"text": text, "stage": "input"}).raise_for_status()

        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(call, range(4)))
        rate = THROUGHPUT_CALLS / (time.perf_counter() - started)
        print(f"  throughput, 1 KB clean, 4 clients, one service process: {rate:.0f} screens/s")
    loop.close()
