"""`make bench`: every benchmark, each printing its figures beside a baseline run in-process."""

from __future__ import annotations

import argparse
import importlib
import time

BENCHES = [
    "bench_execute",
    "bench_pool",
    "bench_sessions",
    "bench_languages",
    "bench_docker",
    "bench_screen",
    "bench_ratelimit",
    "bench_keys",
    "bench_guards",
    "bench_egress",
    "bench_audit",
    "bench_client",
    "bench_scaleout",
]


def main() -> None:
    """Run the named benchmarks (default: all) in order, with the service's logs at warning."""
    from sandgate.logs import configure_logging

    configure_logging("warning")
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(BENCHES)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmarks: {sorted(unknown)}")
    for name in args.names or BENCHES:
        started = time.monotonic()
        print(f"\n== {name} ==", flush=True)
        importlib.import_module(f"tests.bench.{name}").run()
        print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)


main()
