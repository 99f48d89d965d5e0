"""The shared stores (keys, usage, the sessions' registry) on both engines: SQLite in a state
directory and a real PostgreSQL server, each test in a schema of its own. Several store objects
on one database stand for several nodes (each has its own connections), and the PostgreSQL
server is stopped under a store to show the 503 and the recovery without reopening it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sandgate.cluster.pgserver import PgServer
from sandgate.db.base import Database
from sandgate.db.postgres import PostgresDatabase
from sandgate.db.sqlite import SqliteDatabase
from sandgate.errors import StoreUnavailable
from sandgate.keys import Scope
from sandgate.keys.sql import SqlKeyStore
from sandgate.sessions.registry import SessionRecord, SessionRegistry
from sandgate.settings import Settings
from sandgate.stores import state_dsn
from sandgate.usage.base import Usage
from sandgate.usage.sql import SqlUsageStore

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
SECRET = "sg_" + "e" * 43

Opener = Callable[[str], Database]


@pytest.fixture(params=ENGINES)
def open_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens databases of one engine on one place: every call is another node's connection."""
    opened: list[Database] = []

    def open_one(name: str) -> Database:
        if request.param == "sqlite":
            db: Database = SqliteDatabase(tmp_path / f"{name}.db", name)
        else:
            db = PostgresDatabase(request.getfixturevalue("pg_dsn"), name)
        opened.append(db)
        return db

    yield open_one
    for db in opened:
        db.close()


def _session(session_id: str, worker: str, tenant: str = "alpha") -> SessionRecord:
    now = time.time()
    return SessionRecord(
        id=session_id,
        tenant=tenant,
        key_id="k1",
        key_name="agent",
        policy="default",
        policy_hash="0" * 64,
        language="python",
        image="python",
        memory_mb=256,
        created_at=now,
        expires_at=now + 600,
        idle_timeout_s=60,
        last_used_at=now,
        node=worker.split(":")[0],
        worker=worker,
    )


def test_when_a_key_is_made_on_one_node_then_every_node_sees_it_and_its_revocation(
    open_db: Opener,
) -> None:
    one, other = SqlKeyStore(open_db("keys")), SqlKeyStore(open_db("keys"))
    secret, made = one.create("agent", tenant="alpha", scopes=(Scope.EXECUTE,))
    seen = other.lookup(secret)
    assert seen is not None and (seen.id, seen.tenant, seen.scopes) == (
        made.id,
        "alpha",
        made.scopes,
    )
    successor_secret, successor, old = other.rotate(
        made.id, expires_at=time.time() + 3600, grace_until=time.time() + 60
    ) or pytest.fail("no live key to rotate")
    assert one.lookup(successor_secret) == successor and old.rotated_to == successor.id
    assert old.expires_at is not None and old.expires_at <= time.time() + 60
    one.touch(made.id, 500.0)
    other.touch(made.id, 400.0)  # an older use, noted on another node, never moves it back
    assert one.flush_last_used() == other.flush_last_used() == 1
    assert other.get(made.id).last_used_at == 500.0  # type: ignore[union-attr]
    assert one.revoke(made.id) is not None and other.lookup(secret) is None
    assert other.revoke(made.id) is None  # already revoked: nothing to do


def test_when_every_node_seeds_the_env_key_at_once_then_one_key_stays(open_db: Opener) -> None:
    stores = [SqlKeyStore(open_db("keys")) for _ in range(6)]
    start = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def seed(store: SqlKeyStore) -> None:
        start.wait()
        try:
            store.seed(SECRET)
        except Exception as exc:  # noqa: BLE001 - the test reports every failure
            failures.append(exc)

    threads = [threading.Thread(target=seed, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert [(k.name, k.scopes) for k in stores[0].list()] == [("env", [Scope.ADMIN])]


def test_when_nodes_charge_at_once_then_every_charge_is_counted(open_db: Opener) -> None:
    stores = [SqlUsageStore(open_db("usage")) for _ in range(4)]
    charge = Usage(executions=1, cpu_seconds=0.25)

    def add(store: SqlUsageStore) -> None:
        for _ in range(25):
            store.add(["key:k1", "tenant:alpha"], "2026-12-01", charge)
            store.add_host_cpu(1000, 0.25)

    threads = [threading.Thread(target=add, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for subject in ("key:k1", "tenant:alpha"):
        assert stores[1].used(subject, "2026-12-01") == Usage(executions=100, cpu_seconds=25.0)
    assert stores[2].host_cpu(999) == 25.0 and stores[2].host_cpu(1001) == 0.0
    stores[3].prune("2026-12-02", 1001)
    assert stores[0].used("key:k1", "2026-12-01") == Usage() and stores[0].host_cpu(0) == 0.0


def test_when_two_nodes_end_one_session_then_it_ends_once_with_the_first_reason(
    open_db: Opener,
) -> None:
    registry, elsewhere = SessionRegistry(open_db("sessions")), SessionRegistry(open_db("sessions"))
    registry.add(_session("ss_a", "worker-1:10:aa"))
    registry.add(_session("ss_b", "worker-2:20:bb", tenant="beta"))
    assert elsewhere.holders() == {"worker-1:10:aa", "worker-2:20:bb"}
    assert [r.id for r in elsewhere.active(worker="worker-1:10:aa")] == ["ss_a"]
    assert [r.id for r in elsewhere.active(node="worker-2", tenant="beta")] == ["ss_b"]
    elsewhere.used("ss_a", executions=1, files_bytes=10)
    ended = registry.end("ss_a", "killed")
    assert ended is not None and ended.end_reason == "killed" and ended.executions == 1
    assert elsewhere.end("ss_a", "idle") is None  # the second end finds it ended
    assert elsewhere.get("ss_a").end_reason == "killed"  # type: ignore[union-attr]
    assert elsewhere.holders() == {"worker-2:20:bb"}


@pytest.mark.postgres
def test_when_postgresql_goes_away_then_503_and_back_without_reopening(tmp_path: Path) -> None:
    server = PgServer()
    try:
        keys = SqlKeyStore(PostgresDatabase(server.start(), "keys"))
        secret, _made = keys.create("agent")
        server.stop()
        with pytest.raises(StoreUnavailable, match="keys database"):
            keys.lookup(secret)
        with pytest.raises(StoreUnavailable):
            keys.create("while-away")
        server.start()
        assert keys.lookup(secret) is not None  # the same store object, fresh connections
        assert [k.name for k in keys.list()] == ["agent"]  # nothing half-done while away
        keys.close()
    finally:
        server.destroy()


def test_when_only_the_audit_dsn_names_postgresql_then_the_stores_share_it() -> None:
    pg = "postgresql://sandgate@127.0.0.1:5432/sandgate"
    assert state_dsn(Settings(audit_dsn=pg)) == pg
    assert state_dsn(Settings(audit_dsn=pg, state_dsn=pg + "_state")) == pg + "_state"
    assert state_dsn(Settings(audit_dsn="sqlite:///tmp/audit.db")) is None
    assert state_dsn(Settings(audit_dsn="off")) is None
    assert state_dsn(Settings()) is None
