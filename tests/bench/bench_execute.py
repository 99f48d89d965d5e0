"""`/execute` latency with the warm pool on and off, against the bare interpreter of the image.

The baseline is what the code costs without Sandgate: `chroot <rootfs> python3 -c CODE`, the
same interpreter and root filesystem the sandbox runs, started as a subprocess in this process.
Two services run side by side (pool on, with its default pre-imports; pool off), and the three
are measured interleaved in random order, so that a load change on the host hits all alike.
Before each pool-on request the benchmark waits until that service's pool has a ready sandbox
(`/ready`), so the column is the latency of a hit; a miss costs what the pool-off column shows.
"""

from __future__ import annotations

import http.client
import json
import random
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from sandbox.image import ImageStore
from sandgate.settings import REPO_ROOT
from tests.bench._stats import summary
from tests.conftest import ADMIN_KEY, SHARED_IMAGES
from tests.helpers import LiveServer, start_server

RUNS = 60
PRINT = "print(1)"
IMPORTS = (
    "import json, re, datetime\n"
    "print(json.dumps({'d': datetime.date(2026, 1, 2).isoformat()}), re.sub('a', 'b', 'aa'))"
)
TARGETS = {PRINT: (1.5, 3.0), IMPORTS: (1.0, None)}


def _state_dir() -> Path:
    state = Path(tempfile.mkdtemp(prefix="sandgate-bench-"))
    (state / "images").symlink_to(SHARED_IMAGES)
    return state


class Client:
    """A keep-alive `http.client` connection to one service (httpx costs ms a request here)."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        host, port = live.url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=300)
        self.headers = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}

    def another(self) -> Client:
        """A client of the same service on a connection of its own (one per thread)."""
        return Client(self.live)

    def raw(self, method: str, path: str, body: object = None) -> bytes:
        """One request; its answer's body. A connection the server closed while it was idle
        (uvicorn's keep-alive timeout) is opened again: that request never reached it."""
        data = None if body is None else json.dumps(body).encode()
        try:
            self.conn.request(method, path, data, self.headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self.conn.close()
            self.conn.request(method, path, data, self.headers)
            response = self.conn.getresponse()
        return response.read()

    def call(self, method: str, path: str, body: object = None) -> dict[str, object]:
        """One request; its JSON answer."""
        answer: dict[str, object] = json.loads(self.raw(method, path, body))
        return answer

    def execute(self, code: str) -> float:
        """Seconds for one `/execute` of `code`, which must succeed."""
        started = time.perf_counter()
        answer = self.call("POST", "/execute", {"code": code})
        elapsed = time.perf_counter() - started
        assert answer["status"] == "ok", answer
        return elapsed

    def steps(self) -> dict[str, tuple[float, float]]:
        """The service's step timings so far (`sandgate_step_seconds`): step -> (sum s, count)."""
        text = self.raw("GET", "/metrics").decode()
        found: dict[str, list[float]] = {}
        for line in text.splitlines():
            for kind, index in (("_sum{", 0), ("_count{", 1)):
                if line.startswith("sandgate_step_seconds" + kind):
                    step = line.split('step="', 1)[1].split('"', 1)[0]
                    found.setdefault(step, [0.0, 0.0])[index] = float(line.rsplit(" ", 1)[1])
        return {step: (total, count) for step, (total, count) in found.items()}

    def claims(self) -> dict[str, float]:
        """The pool's claims so far (`sandgate_pool_claims_total`): hit and miss."""
        text = self.raw("GET", "/metrics").decode()
        found = {"hit": 0.0, "miss": 0.0}
        for line in text.splitlines():
            if line.startswith("sandgate_pool_claims_total{"):
                found[line.split('result="', 1)[1].split('"', 1)[0]] = float(line.split()[-1])
        return found

    def wait_pool(self, timeout: float = 60) -> None:
        """Until every class of the pool has a ready sandbox."""
        deadline = time.monotonic() + timeout
        while True:
            pool = self.call("GET", "/ready")["pool"]
            assert isinstance(pool, dict) and pool, pool
            if all(c["ready"] >= 1 for c in pool.values()):
                return
            assert time.monotonic() < deadline, f"the pool never filled: {pool}"
            time.sleep(0.02)


@contextmanager
def services(**extra: str) -> Iterator[tuple[Client, Client]]:
    """(pool on, pool off) services, each with its own state directory."""
    base = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_LOG_LEVEL": "warning", **extra}
    with ExitStack() as stack:
        on = stack.enter_context(start_server(_state_dir(), base))
        off = stack.enter_context(start_server(_state_dir(), {**base, "SANDGATE_POOL_SIZE": "0"}))
        yield Client(on), Client(off)


def bare(rootfs: Path, code: str) -> float:
    """Seconds for `chroot <rootfs> python3 -c code`."""
    started = time.perf_counter()
    subprocess.run(["chroot", str(rootfs), "python3", "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


def run() -> None:
    """p50/p95 of print(1) and of code importing json/re/datetime: pool on, off, and bare."""
    rootfs = ImageStore(REPO_ROOT / "images", REPO_ROOT / ".state").rootfs("python")
    with services() as (on, off):
        for code in (PRINT, IMPORTS):
            times: dict[str, list[float]] = {"on": [], "off": [], "bare": []}
            on.wait_pool()
            for client in (on, off):
                client.execute(code)  # the first run of each pays for a cold page cache
            bare(rootfs, code)
            before = on.steps()
            for _ in range(RUNS):
                for kind in random.sample(list(times), 3):
                    if kind == "on":
                        on.wait_pool()
                    service = {"on": on, "off": off}.get(kind)
                    times[kind].append(service.execute(code) if service else bare(rootfs, code))
            (n50, n95), (f50, f95), (b50, b95) = (summary(times[k]) for k in ("on", "off", "bare"))
            p50_target, p95_target = TARGETS[code]
            name = "print(1)" if code == PRINT else "import json, re, datetime"
            print(f"{name}, {RUNS} runs each, interleaved    p50 ms   p95 ms  ratio p50 / p95")
            for label, (p50, p95) in (("pool on (hit)", (n50, n95)), ("pool off", (f50, f95))):
                print(
                    f"  POST /execute, {label:14s} {p50:8.1f} {p95:8.1f}"
                    f"  {p50 / b50:5.2f}x / {p95 / b95:.2f}x"
                )
            print(f"  chroot rootfs python3 -c     {b50:8.1f} {b95:8.1f}")
            p95_goal = f", p95 <= {p95_target}x" if p95_target else ""
            print(f"  target: pool on p50 <= {p50_target}x bare{p95_goal}")
            print(
                "  where a pool-on request's time goes (the service's own step timings, mean ms):"
            )
            print("   ", _step_means(before, on.steps()))


def _step_means(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> str:
    """The steps that took at least 0.5 ms on average between two readings, slowest first."""
    means = {}
    for step, (total, count) in after.items():
        was_total, was_count = before.get(step, (0.0, 0.0))
        if count > was_count:
            means[step] = 1000 * (total - was_total) / (count - was_count)
    slow = sorted((m, s) for s, m in means.items() if m >= 0.5 and not s.startswith("detector."))
    return ", ".join(f"{s} {m:.1f}" for m, s in reversed(slow))
