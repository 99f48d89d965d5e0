"""Audit write throughput: records per second durably committed with the chain.

SQLite (WAL, synchronous=FULL) and PostgreSQL (a private server from Debian's binaries,
synchronous_commit=on), one writer and four threads, each append its own transaction, in
the same run; beside them, sealing alone (hashing, no database) as the baseline, and the
rate of a full verify.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable

from sandgate.audit import AuditEvent, AuditStore, open_store
from sandgate.audit.chain import GENESIS, seal
from sandgate.cluster.pgserver import PgServer
from tests.bench._stats import summary

__all__ = ["run"]

RECORDS = 2000
KEY = b"bench-checkpoint-key-0123456789ab"


def _event(n: int) -> AuditEvent:
    """A typical /execute record: screening verdicts, resource use, short excerpts."""
    return AuditEvent(
        action="execute",
        verdict="allow",
        status="ok",
        tenant="acme",
        key_id=f"key-{n % 8}",
        key_name="agent",
        policy_name="default",
        policy_hash="ab" * 32,
        request_id=f"req-{n}",
        client="10.0.0.7",
        content={"code": "import math\nprint(math.pi)\n" * 4, "stdout": "3.141592653589793\n"},
        details={
            "wall_ms": 152,
            "cpu_ms": 31,
            "peak_memory_bytes": 12_582_912,
            "screening": {"code": {"verdict": "allow", "findings": []}},
            "egress": [],
        },
    )


def _appends(store: AuditStore, threads: int, total: int) -> tuple[float, list[float]]:
    """(records/s, per-append latencies) for `total` appends spread over `threads` threads."""
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        mine = []
        barrier.wait()
        for n in range(t, total, threads):
            started = time.perf_counter()
            store.append(_event(n))
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return total / (time.perf_counter() - started), latencies


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _seal_only(total: int) -> float:
    events = [_event(n) for n in range(total)]
    prev = GENESIS

    def chain() -> None:
        nonlocal prev
        for n, ev in enumerate(events, 1):
            prev = seal(
                ev, seq=n, record_id=str(n), time="2024-01-01T00:00:00.000000Z", prev_hash=prev
            ).hash

    return total / _timed(chain)


def run() -> None:
    """Print audit write throughput for SQLite and PostgreSQL, 1 and 4 threads."""
    print(f"chain only, no database (baseline): {_seal_only(RECORDS):9.0f} records/s sealed")
    server = PgServer(database="sandgate_bench")
    try:
        pg_dsn = server.start()
        with tempfile.TemporaryDirectory(prefix="sandgate-bench-audit-") as tmp:
            backends = [
                ("sqlite WAL synchronous=FULL", f"sqlite://{tmp}/audit.db"),
                ("postgresql synchronous_commit=on", pg_dsn),
            ]
            for name, dsn in backends:
                with open_store(dsn, hmac_key=KEY, checkpoint_every=1000) as store:
                    _appends(store, 1, 50)  # warm-up: schema, connections, caches
                    for threads in (1, 4):
                        rate, latencies = _appends(store, threads, RECORDS)
                        p50, p95 = summary(latencies)
                        print(
                            f"{name:34} {threads} thread(s): {rate:7.0f} records/s committed, "
                            f"append p50 {p50:.2f} ms, p95 {p95:.2f} ms"
                        )
                    count = store.count()
                    verify_s = _timed(lambda s=store: s.verify(KEY))  # type: ignore[misc]
                    print(f"{name:34} verify: {count / verify_s:7.0f} records/s ({count} records)")
    finally:
        server.destroy()
    _service_overhead()


def _service_overhead(rounds: int = 40) -> None:
    """The latency auditing adds to /execute and /screen: one service with the default SQLite
    store, one with auditing off, called alternately in the same run."""
    from tests.bench.bench_execute import _state_dir
    from tests.conftest import ADMIN_KEY
    from tests.helpers import start_server

    base = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_LOG_LEVEL": "warning"}
    calls = {
        "/execute": {"code": "print(1)"},
        "/screen": {"text": "Please summarise the attached quarterly report.", "stage": "input"},
    }
    with (
        start_server(_state_dir(), base) as audited,
        start_server(_state_dir(), {**base, "SANDGATE_AUDIT_DSN": "off"}) as unaudited,
    ):
        for path, body in calls.items():
            samples: dict[str, list[float]] = {"on": [], "off": []}
            for _ in range(rounds + 1):
                for label, live in (("on", audited), ("off", unaudited)):
                    with live.client() as client:
                        started = time.perf_counter()
                        client.post(path, json=body).raise_for_status()
                        samples[label].append(time.perf_counter() - started)
            (on50, on95), (off50, off95) = (summary(samples[k][1:]) for k in ("on", "off"))
            print(
                f"{path:9} audited p50 {on50:7.1f} ms p95 {on95:7.1f} | audit off p50 "
                f"{off50:7.1f} ms p95 {off95:7.1f} | added p50 {on50 - off50:+.1f} ms"
            )


if __name__ == "__main__":
    run()
