"""Sessions: execute latency against `/execute` with the pool and a bare interpreter, time to the
first streamed byte, and what an idle session costs the host.

`x += 1` in a session (a warm interpreter, over HTTP) is measured interleaved in random order
with `/execute` of the same code on the pool-on service (each a pool hit: the benchmark waits
for a ready sandbox first) and with the bare baseline, `chroot <rootfs> python3 -c 'x = 0; x +=
1'`. Time to first byte: a streamed (`application/x-ndjson`) execution that prints, sleeps and
prints, in a session and through `/execute`. Idle cost: for sessions opened and left idle, the
memory their sandbox cgroup charges (`memory.usage_in_bytes`, cgroup v1's `memory.current`)
and the RSS of their host processes (runsc's sandbox and gofer, and the launcher; the sandbox
process's RSS is largely inside the cgroup's figure too, so the two overlap).
"""

from __future__ import annotations

import http.client
import json
import random
import time
from pathlib import Path

import psutil

from sandbox.cgroup import CGROUP_ROOT
from sandbox.image import ImageStore
from sandbox.runsc import REFILL_CPU_SHARES
from sandgate.settings import REPO_ROOT
from tests.bench._stats import summary
from tests.bench.bench_execute import Client, bare, services

RUNS = 60
STREAM_RUNS = 15
IDLE_SESSIONS = 3  # with the one measured above: the default policy's 4 per key
STATEMENT = "x += 1"
STREAMED = "import time\nprint('first', flush=True)\ntime.sleep(0.3)\nprint('second')"
MiB = 1 << 20


def _session(client: Client) -> str:
    answer = client.call("POST", "/sessions", {})
    session_id = answer["session_id"]
    assert isinstance(session_id, str), answer
    client.call("POST", f"/sessions/{session_id}/execute", {"code": "x = 0"})
    return session_id


def _in_session(client: Client, session_id: str) -> float:
    started = time.perf_counter()
    answer = client.call("POST", f"/sessions/{session_id}/execute", {"code": STATEMENT})
    elapsed = time.perf_counter() - started
    assert answer["status"] == "ok", answer
    return elapsed


def _first_byte(client: Client, path: str) -> float:
    """Seconds from sending a streamed execution to its first line (then read to the end)."""
    host, port = client.live.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {**client.headers, "Accept": "application/x-ndjson"}
    started = time.perf_counter()
    conn.request("POST", path, json.dumps({"code": STREAMED}).encode(), headers)
    response = conn.getresponse()
    first = response.readline()
    elapsed = time.perf_counter() - started
    assert json.loads(first)["type"] == "stdout", first
    response.read()
    conn.close()
    return elapsed


def _sandboxes(state_dir: Path) -> set[str]:
    """The names of the service's sandboxes now (bundle directories) but the pool's (those
    boot at the refill's CPU weight, a session's runs at the default one)."""
    found = set()
    for bundle in (state_dir / "run").iterdir():
        shares = next((CGROUP_ROOT / "cpu" / "sandgate").glob(f"*/{bundle.name}/cpu.shares"), None)
        if shares is not None and int(shares.read_text()) != REFILL_CPU_SHARES:
            found.add(bundle.name)
    return found


def _idle_cost(state_dir: Path, names: set[str]) -> tuple[float, float]:
    """(cgroup memory, host processes' RSS) per sandbox among `names`, MiB, mean."""
    charged = 0
    for cgroup in (CGROUP_ROOT / "memory" / "sandgate").glob("*/*"):
        if cgroup.name in names:
            charged += int((cgroup / "memory.usage_in_bytes").read_text())
    rss = 0
    for proc in psutil.process_iter(["cmdline", "memory_info"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(state_dir) in cmdline and any(name in cmdline for name in names):
            rss += proc.info["memory_info"].rss
    return charged / len(names) / MiB, rss / len(names) / MiB


def run() -> None:
    """p50/p95 of a session's `x += 1` against /execute (pool hit) and bare; first byte; idle."""
    rootfs = ImageStore(REPO_ROOT / "images", REPO_ROOT / ".state").rootfs("python")
    baseline = "x = 0\nx += 1"
    with services() as (on, _off):
        on.wait_pool()
        session_id = _session(on)
        on.execute(baseline)
        bare(rootfs, baseline)
        times: dict[str, list[float]] = {"session": [], "execute": [], "bare": []}
        for _ in range(RUNS):
            for kind in random.sample(list(times), 3):
                if kind == "session":
                    times[kind].append(_in_session(on, session_id))
                elif kind == "execute":
                    on.wait_pool()
                    times[kind].append(on.execute(baseline))
                else:
                    times[kind].append(bare(rootfs, baseline))
        (s50, s95), (e50, e95), (b50, b95) = (summary(times[k]) for k in times)
        print(f"x += 1, {RUNS} runs each, interleaved        p50 ms   p95 ms  ratio to bare p50")
        print(f"  POST /sessions/{{id}}/execute    {s50:8.1f} {s95:8.1f}  {s50 / b50:5.2f}x")
        print(f"  POST /execute, pool on (hit)    {e50:8.1f} {e95:8.1f}  {e50 / b50:5.2f}x")
        print(f"  chroot rootfs python3 -c        {b50:8.1f} {b95:8.1f}")
        print(f"  session / execute p50: {s50 / e50:.2f}x; target: session <= 1.0x bare")

        firsts: dict[str, list[float]] = {"session": [], "execute": []}
        for _ in range(STREAM_RUNS):
            on.wait_pool()
            firsts["execute"].append(_first_byte(on, "/execute"))
            firsts["session"].append(_first_byte(on, f"/sessions/{session_id}/execute"))
        print(f"time to the first streamed line, {STREAM_RUNS} runs   p50 ms   p95 ms")
        for kind, label in (("session", "session execute"), ("execute", "/execute (pool hit)")):
            p50, p95 = summary(firsts[kind])
            print(f"  {label:28s}     {p50:8.1f} {p95:8.1f}")

        state_dir = on.live.state_dir
        before = _sandboxes(state_dir)
        opened = [_session(on) for _ in range(IDLE_SESSIONS)]
        new = _sandboxes(state_dir) - before
        time.sleep(2)  # let them settle idle
        charged, rss = _idle_cost(state_dir, new)
        print(f"an idle session ({len(new)} opened, each after `x = 0`), mean per session")
        print(f"  sandbox cgroup memory   {charged:6.1f} MiB")
        print(f"  host processes' RSS     {rss:6.1f} MiB  (runsc sandbox + gofer + launcher)")
        for opened_id in [session_id, *opened]:
            on.raw("DELETE", f"/sessions/{opened_id}")
