"""`make load`: the service on real gVisor under about a minute of realistic traffic (locust).

Starts `sandgate serve` on 127.0.0.1 in a fresh state directory, makes a few agent keys, runs
`tests/load/locustfile.py` headless, samples the service process's resident memory throughout,
and prints throughput, latency percentiles and failures per route and the peak memory. The
HTML report and locust's CSV files land in `--out` (default `.state/load/`).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from sandgate.settings import REPO_ROOT
from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import start_server

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def _sample_peak(pid: int, stop: threading.Event, peak: list[int]) -> None:
    process = psutil.Process(pid)
    while not stop.wait(0.2):
        try:
            peak[0] = max(peak[0], process.memory_info().rss)
        except psutil.Error:
            return


def _report(out: Path, seconds: float, peak_rss: int) -> None:
    with (out / "load_stats.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    print(
        f"\n  {'route':22s} {'requests':>8s} {'fails':>6s} {'req/s':>7s} "
        f"{'p50':>6s} {'p95':>6s} {'p99':>6s} {'max':>7s}  (ms)"
    )
    for row in rows:
        print(
            f"  {row['Name']:22s} {row['Request Count']:>8s} {row['Failure Count']:>6s} "
            f"{float(row['Requests/s']):7.1f} {row['50%']:>6s} {row['95%']:>6s} "
            f"{row['99%']:>6s} {float(row['Max Response Time']):7.0f}"
        )
    with (out / "load_failures.csv").open() as handle:
        failures = list(csv.DictReader(handle))
    print("\n  failures:" if failures else "\n  failures: none")
    for row in failures:
        print(f"    {row['Name']}: {row['Error']} x{row['Occurrences']}")
    print(f"\n  duration {seconds:.0f} s; service peak RSS {peak_rss / 2**20:.0f} MiB")
    print(f"  HTML report: {out / 'report.html'}")


def main() -> None:
    """Run the load test; exit non-zero when locust or the service failed to run."""
    parser = argparse.ArgumentParser(prog="python -m tests.load")
    parser.add_argument("--users", type=int, default=20, help="concurrent agents")
    parser.add_argument("--seconds", type=int, default=60, help="how long the traffic runs")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / ".state" / "load")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    state = make_state_dir(Path(tempfile.mkdtemp(prefix="sandgate-load-")) / "state")
    env = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_LOG_LEVEL": "warning"}
    with start_server(state, env) as live:
        keys = [live.new_key(f"agent-{i}", tenant=f"team-{i % 2}") for i in range(4)]
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=_sample_peak, args=(live.process.pid, stop, peak))
        sampler.start()
        started = time.monotonic()
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("locust")),
                "-f",
                str(LOCUSTFILE),
                "--headless",
                "--host",
                live.url,
                "-u",
                str(args.users),
                "-r",
                str(max(1, args.users // 5)),
                "-t",
                f"{args.seconds}s",
                "--stop-timeout",
                "10",
                "--html",
                str(args.out / "report.html"),
                "--csv",
                str(args.out / "load"),
                "--only-summary",
                "--loglevel",
                "WARNING",
            ],
            env={"LOAD_KEYS": ",".join(keys), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.monotonic() - started
        stop.set()
        sampler.join()
    if not (args.out / "load_stats.csv").exists():
        sys.exit(f"locust did not run:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    _report(args.out, seconds, peak[0])


main()
