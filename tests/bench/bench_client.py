"""The SDK's overhead per `execute` over the raw HTTP call (httpx post + JSON decode), both in
the same run: against the real service, where the sandbox's own jitter dwarfs it, and against a
replay of one real answer on 127.0.0.1, where only the client's work differs (target: < 1 ms
at p50)."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from sandgate_client import AsyncSandgate, Sandgate

from tests.bench._stats import summary
from tests.bench.bench_execute import _state_dir
from tests.conftest import ADMIN_KEY
from tests.helpers import start_server

SERVICE_RUNS = 30
REPLAY_RUNS = 2000
CODE = "print(1)"


def _pairs(
    raw: Callable[[], object], sdk: Callable[[], object], runs: int
) -> tuple[list[float], list[float]]:
    """Alternate the two calls `runs` times each (so drift hits both alike); their times."""
    raw_times, sdk_times = [], []
    for _ in range(runs):
        for call, times in ((raw, raw_times), (sdk, sdk_times)):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
    return raw_times, sdk_times


def _report(title: str, raw: list[float], sdk: list[float]) -> None:
    (r50, r95), (s50, s95) = summary(raw), summary(sdk)
    paired = statistics.median(s - r for r, s in zip(raw, sdk, strict=True)) * 1000
    print(title)
    print(f"  raw httpx post + json       {r50:9.3f}  {r95:9.3f}")
    print(f"  sandgate_client execute     {s50:9.3f}  {s95:9.3f}")
    print(f"  overhead (p50 difference)   {s50 - r50:9.3f} ms   median paired: {paired:.3f} ms")


@contextmanager
def _replay(body: bytes) -> Iterator[str]:
    """A keep-alive HTTP server on 127.0.0.1 answering every POST with `body`."""

    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    answer = head.encode() + body

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # and one write per answer: no delayed-ACK stalls

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.wfile.write(answer)

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _compare(url: str, runs: int, title: str) -> bytes:
    """Raw and SDK calls against `url`, reported; returns one raw answer's bytes."""
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with (
        httpx.Client(base_url=url, headers=headers, timeout=60) as raw,
        Sandgate(url, ADMIN_KEY) as sdk,
    ):
        answer = raw.post("/execute", json={"code": CODE})
        assert answer.json()["status"] == "ok", answer.text
        assert sdk.execute(CODE).ok
        raw_times, sdk_times = _pairs(
            lambda: raw.post("/execute", json={"code": CODE}).json(),
            lambda: sdk.execute(CODE),
            runs,
        )
    _report(title, raw_times, sdk_times)
    return answer.content


async def _compare_async(url: str, runs: int) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers) as raw,
        AsyncSandgate(url, ADMIN_KEY) as sdk,
    ):
        raw_times, sdk_times = [], []
        for _ in range(runs):
            started = time.perf_counter()
            (await raw.post("/execute", json={"code": CODE})).json()
            raw_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            await sdk.execute(CODE)
            sdk_times.append(time.perf_counter() - started)
    _report(f"async, replayed answer, {runs} runs each    p50 ms     p95 ms", raw_times, sdk_times)


def run() -> None:
    """Print raw-vs-SDK p50/p95 against the real service, then against the replayed answer."""
    env = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_LOG_LEVEL": "warning"}
    with start_server(_state_dir(), env) as live:
        body = _compare(
            live.url,
            SERVICE_RUNS,
            f"real service, {SERVICE_RUNS} runs each         p50 ms     p95 ms",
        )
    with _replay(body) as url:
        _compare(
            url, REPLAY_RUNS, f"replayed answer, {REPLAY_RUNS} runs each      p50 ms     p95 ms"
        )
        asyncio.run(_compare_async(url, REPLAY_RUNS))
