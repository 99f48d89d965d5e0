"""Egress: a 100 MB download through forwarder + proxy against the same download direct.

Origin and client are separate processes (as they are in production: the origin outside, the
client inside the sandbox); the proxy runs on its own event loop thread in this process, as the
service runs it, and the forwarder is the real script on the distribution's python3.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from sandbox.egress import Allowlist, EgressCaps, EgressProxy, forwarder_argv, forwarder_path

__all__ = ["measure", "run"]

SIZE = 100 * (1 << 20)
RUNS = 3
TTFB_RUNS = 30
PYTHON = "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else sys.executable

ORIGIN = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BLOCK = b"x" * (1 << 20)
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        size = int(self.path.rsplit("=", 1)[1])
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("Connection", "close")
        self.end_headers()
        while size:
            n = min(size, len(BLOCK))
            self.wfile.write(BLOCK[:n])
            size -= n
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""

CLIENT = """
import json, sys, time, urllib.request
proxy, url, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy} if proxy else {}))
out = []
for _ in range(runs):
    start = time.perf_counter()
    with opener.open(url, timeout=120) as r:
        first = r.read(1)
        ttfb = time.perf_counter() - start
        got = len(first)
        while chunk := r.read(1 << 20):
            got += len(chunk)
    out.append([ttfb, time.perf_counter() - start, got])
print(json.dumps(out))
"""


def _client(proxy: str, url: str, runs: int) -> list[list[float]]:
    done = subprocess.run(
        [PYTHON, "-c", CLIENT, proxy, url, str(runs)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: list[list[float]] = json.loads(done.stdout)
    return result


def measure() -> dict[str, float]:
    """Run both paths in this run and return MB/s and time-to-first-byte figures."""
    origin = subprocess.Popen([PYTHON, "-c", ORIGIN], stdout=subprocess.PIPE, text=True)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    forwarder: subprocess.Popen[str] | None = None
    workdir = Path(tempfile.mkdtemp(prefix="sandgate-bench-egress-"))
    sock_path = workdir / "egress.sock"
    try:
        assert origin.stdout is not None
        port = int(origin.stdout.readline())
        caps = EgressCaps(bytes_per_connection=2 * SIZE, bytes_per_execution=100 * SIZE)
        proxy = EgressProxy(Allowlist([f"127.0.0.1:{port}"]), allow_private=True, caps=caps)
        asyncio.run_coroutine_threadsafe(proxy.start(sock_path), loop).result(10)
        forwarder = subprocess.Popen(
            forwarder_argv(PYTHON, str(forwarder_path()), str(sock_path), 0),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert forwarder.stdout is not None
        proxy_url = f"http://127.0.0.1:{forwarder.stdout.readline().split()[1]}"
        big, small = f"http://127.0.0.1:{port}/?n={SIZE}", f"http://127.0.0.1:{port}/?n=1"
        _client(proxy_url, small, 3)  # warm both paths
        _client("", small, 3)
        direct = _client("", big, RUNS)
        proxied = _client(proxy_url, big, RUNS)
        assert all(got == SIZE for *_, got in direct + proxied)
        direct_ttfb = _client("", small, TTFB_RUNS)
        proxied_ttfb = _client(proxy_url, small, TTFB_RUNS)
        asyncio.run_coroutine_threadsafe(proxy.aclose(), loop).result(10)
    finally:
        if forwarder is not None:
            forwarder.terminate()
            forwarder.wait(5)
            if forwarder.stdout:
                forwarder.stdout.close()
        origin.terminate()
        origin.wait(5)
        if origin.stdout:
            origin.stdout.close()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        sock_path.unlink(missing_ok=True)
        workdir.rmdir()

    def mbps(samples: list[list[float]]) -> float:
        return statistics.median(SIZE / (1 << 20) / total for _, total, _ in samples)

    def ttfb_ms(samples: list[list[float]]) -> float:
        return statistics.median(first for first, _, _ in samples) * 1000

    return {
        "direct_mb_s": mbps(direct),
        "proxied_mb_s": mbps(proxied),
        "direct_ttfb_ms": ttfb_ms(direct_ttfb),
        "proxied_ttfb_ms": ttfb_ms(proxied_ttfb),
    }


def run() -> None:
    """Print proxied vs direct throughput and the added time to first byte."""
    figures = measure()
    ratio = figures["proxied_mb_s"] / figures["direct_mb_s"]
    added = figures["proxied_ttfb_ms"] - figures["direct_ttfb_ms"]
    print(f"100 MB HTTP download, median of {RUNS}      MB/s")
    print(f"  direct on the host               {figures['direct_mb_s']:8.1f}")
    print(f"  forwarder + egress proxy         {figures['proxied_mb_s']:8.1f}  ({ratio:.2f}x)")
    print(f"time to first byte, median of {TTFB_RUNS}  ms")
    print(f"  direct                           {figures['direct_ttfb_ms']:8.2f}")
    print(f"  through the proxy                {figures['proxied_ttfb_ms']:8.2f}  (+{added:.2f})")


if __name__ == "__main__":
    run()
