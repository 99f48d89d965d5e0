"""Many writers, one chain: threads and processes appending at once, and kill -9 mid-append."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable

import pytest

from sandgate.audit import AuditRecord, AuditStore, open_store
from tests.audit.helpers import HMAC_KEY, event, spawn_child

# A child appends `count` events from `threads` threads, printing "seq request_id" for each
# record once `append` has returned (so only committed records are ever printed).
APPENDER = """
import sys, threading
from sandgate.audit import AuditEvent, open_store
dsn, tag, count, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = open_store(dsn, hmac_key=b"test-checkpoint-key-0123456789abcdef", checkpoint_every=25)
lock = threading.Lock()
def work(t):
    n = 0
    while count < 0 or n < count:
        rid = f"{tag}-{t}-{n}"
        rec = store.append(AuditEvent(action="execute", verdict="allow", request_id=rid,
                                      content={"code": "x" * 200}))
        with lock:
            print(rec.seq, rid, flush=True)
        n += 1
workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
store.close()
"""


def _assert_one_chain(store: AuditStore, expected: int) -> list[AuditRecord]:
    records = list(store.iter_records())
    assert [r.seq for r in records] == list(range(1, expected + 1))
    assert len({r.prev_hash for r in records}) == expected  # no two records share a parent
    report = store.verify(HMAC_KEY)
    assert report.ok, report.summary()
    return records


def _printed(output: str) -> dict[int, str]:
    seen: dict[int, str] = {}
    lines = output.split("\n")[:-1]  # a last line without its newline was cut by the kill
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():  # a line cut by the kill is ignored
            seq, rid = int(parts[0]), parts[1]
            assert seq not in seen, f"seq {seq} handed out twice"
            seen[seq] = rid
    return seen


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "store-per-thread"])
def test_when_threads_append_at_once_then_the_chain_does_not_fork(
    make_store: Callable[..., AuditStore], shared: bool
) -> None:
    threads, each = 8, 40
    common = make_store(hmac_key=HMAC_KEY, checkpoint_every=16)
    stores = [common if shared else make_store(hmac_key=HMAC_KEY) for _ in range(threads)]
    barrier = threading.Barrier(threads)
    got: list[list[int]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait()
            for n in range(each):
                got[t].append(stores[t].append(event(n, request_id=f"{t}-{n}")).seq)
        except BaseException as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors, errors
    records = _assert_one_chain(common, threads * each)
    for t, seqs in enumerate(got):
        assert seqs == sorted(seqs)
        assert [records[s - 1].request_id for s in seqs] == [f"{t}-{n}" for n in range(each)]


@pytest.mark.slow
def test_when_processes_append_at_once_then_the_chain_does_not_fork(
    dsn: str, make_store: Callable[..., AuditStore]
) -> None:
    store = make_store()  # creates the schema before the children race for it
    children = [spawn_child(APPENDER, dsn, f"p{p}", "60", "2") for p in range(3)]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=240)
        assert child.returncode == 0, err[-3000:]
        outputs.append(out)
    printed: dict[int, str] = {}
    for out in outputs:
        for seq, rid in _printed(out).items():
            assert seq not in printed, f"seq {seq} handed to two processes"
            printed[seq] = rid
    records = _assert_one_chain(store, 3 * 2 * 60)
    assert {r.seq: r.request_id for r in records} == printed


@pytest.mark.slow
def test_when_an_appender_is_killed_at_any_moment_then_nothing_answered_is_lost(
    dsn: str, make_store: Callable[..., AuditStore]
) -> None:
    make_store()
    seed = int(os.environ.get("AUDIT_CRASH_SEED") or time.time_ns())
    rng = random.Random(seed)
    answered: dict[int, str] = {}
    for round_, threads in enumerate([1, 4, 1, 4]):
        child = spawn_child(APPENDER, dsn, f"r{round_}", "-1", str(threads))
        assert child.stdout is not None and child.stderr is not None
        first = child.stdout.readline()  # the first commit: the kill then lands mid-stream
        assert first, child.stderr.read()[-3000:]
        time.sleep(rng.uniform(0.02, 0.8))
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        answered.update(_printed(first + rest))
    with open_store(dsn) as store:
        report = store.verify(HMAC_KEY)
        assert report.ok, report.summary()
        stored = {r.seq: r.request_id for r in store.iter_records()}
    missing = {seq: rid for seq, rid in answered.items() if stored.get(seq) != rid}
    assert not missing, f"seed {seed}: answered but not in the log: {sorted(missing)[:10]}"
    assert len(answered) > 20
