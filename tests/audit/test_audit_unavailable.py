"""When the database cannot be used, every call raises `AuditUnavailable` (the service's 503)."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from sandgate.audit import AuditStore, AuditUnavailable, open_store
from sandgate.cluster.pgserver import PgServer
from tests.audit.helpers import HMAC_KEY, event


def _all_calls_fail(store: AuditStore) -> None:
    with pytest.raises(AuditUnavailable):
        store.append(event(1))
    with pytest.raises(AuditUnavailable):
        store.append_many([event(2), event(3)])
    with pytest.raises(AuditUnavailable):
        list(store.iter_records())
    with pytest.raises(AuditUnavailable):
        store.page()
    with pytest.raises(AuditUnavailable):
        store.verify(HMAC_KEY)
    with pytest.raises(AuditUnavailable):
        store.checkpoint(HMAC_KEY)


@pytest.mark.postgres
def test_when_the_postgres_server_stops_then_calls_fail_and_recover_after_restart(
    own_pg: PgServer,
) -> None:
    with open_store(own_pg.dsn) as store:
        store.append_many([event(n) for n in range(3)])
        own_pg.stop("immediate")
        _all_calls_fail(store)
        with pytest.raises(AuditUnavailable):
            open_store(own_pg.dsn)
        own_pg.start()
        assert store.append(event(9)).seq == 4
        assert store.verify(HMAC_KEY).ok


@pytest.mark.postgres
def test_when_the_server_restarts_then_pooled_connections_are_not_lent_dead(
    own_pg: PgServer,
) -> None:
    with open_store(own_pg.dsn) as store:
        _busy(store, threads=4)
        pooled = getattr(store, "_pool").idle  # noqa: B009 - the pool is private on purpose
        assert pooled >= 2, "the test needs several idle connections to mean anything"
        own_pg.stop("immediate")
        own_pg.start()
        assert store.append(event(1)).seq == 4 * 5 + 1  # the very first call after a restart
        assert store.verify(HMAC_KEY).ok


def _busy(store: AuditStore, threads: int) -> None:
    """Appends from several threads at once, so the store opens several connections."""
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for n in range(5):
            store.page(limit=1)
            store.append(event(n))

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


@pytest.mark.postgres
def test_when_the_postgres_server_is_unreachable_then_opening_fails_quickly() -> None:
    with pytest.raises(AuditUnavailable, match="OperationalError"):
        open_store("postgresql://postgres@127.0.0.1:1/none", connect_timeout=2)


@pytest.mark.parametrize("problem", ["missing-dir", "a-directory", "not-a-database"])
def test_when_the_sqlite_file_cannot_be_opened_then_unavailable(
    tmp_path: Path, problem: str
) -> None:
    path = tmp_path / "audit.db"
    if problem == "missing-dir":
        path = tmp_path / "gone" / "audit.db"
    elif problem == "a-directory":
        path.mkdir()
    else:
        path.write_bytes(b"this is not a database file at all" * 200)
    with pytest.raises(AuditUnavailable, match=str(path)):
        open_store(f"sqlite://{path}")


def _immutable(paths: list[Path], on: bool) -> None:
    flag = "+i" if on else "-i"
    existing = [str(p) for p in paths if p.exists()]
    subprocess.run(["chattr", flag, *existing], check=True, capture_output=True)


def test_when_the_sqlite_file_becomes_unwritable_then_appends_fail_until_it_is_writable(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.db"
    files = [path, path.with_name("audit.db-wal")]
    with open_store(f"sqlite://{path}") as store:
        store.append_many([event(n) for n in range(3)])
        _immutable(files, on=True)  # even root cannot write an immutable file
        try:
            with pytest.raises(AuditUnavailable):
                store.append(event(3))
        finally:
            _immutable(files, on=False)
        assert store.append(event(4)).seq == 4
        assert store.verify(HMAC_KEY).ok and store.count() == 4


def test_when_a_closed_sqlite_file_is_unwritable_then_the_store_cannot_append(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.db"
    with open_store(f"sqlite://{path}") as store:
        store.append(event(1))
    _immutable([path], on=True)
    try:
        with pytest.raises(AuditUnavailable):
            with open_store(f"sqlite://{path}") as store:
                store.append(event(2))
    finally:
        _immutable([path], on=False)


def test_when_another_process_holds_the_write_lock_then_append_gives_up_in_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.db"
    with open_store(f"sqlite://{path}", busy_timeout=0.3) as store:
        store.append(event(1))
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            with pytest.raises(AuditUnavailable, match="locked"):
                store.append(event(2))
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert store.append(event(3)).seq == 2


def test_when_the_store_is_closed_then_it_refuses_to_be_used(store: AuditStore) -> None:
    store.close()
    with pytest.raises(Exception, match="closed"):
        store.append(event(1))
