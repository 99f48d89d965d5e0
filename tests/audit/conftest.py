"""Fixtures for the audit tests: the same suite runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server is private to the test session (initdb into a temporary directory);
each test gets a schema of its own in it. Missing binaries FAIL the session's PostgreSQL
tests with a message naming `.ci/postgres`: they are never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from sandgate.audit import AuditStore, open_store
from sandgate.cluster.pgserver import PgMissing, PgServer
from tests.audit.helpers import HMAC_KEY, RawDb

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _running_pg() -> Iterator[PgServer]:
    try:
        server = PgServer()
    except PgMissing as exc:
        pytest.fail(str(exc))
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session, stopped and deleted at the end."""
    yield from _running_pg()


@pytest.fixture
def own_pg() -> Iterator[PgServer]:
    """A PostgreSQL server of the test's own, so stopping it harms no other test."""
    yield from _running_pg()


def _schema_dsn(base: str, schema: str) -> str:
    return f"{base}?options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> Iterator[str]:
    """A DSN whose search_path is a fresh, empty schema."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield _schema_dsn(pg_server.dsn, schema)
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=BACKENDS)
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty audit store's DSN, once per backend."""
    if request.param == "sqlite":
        return f"sqlite://{tmp_path / 'audit.db'}"
    value: str = request.getfixturevalue("pg_dsn")
    return value


@pytest.fixture
def make_store(dsn: str) -> Iterator[Callable[..., AuditStore]]:
    """Opens stores on `dsn` (checkpoints off unless asked); closes them all afterwards."""
    opened: list[AuditStore] = []

    def make(**options: Any) -> AuditStore:
        options.setdefault("checkpoint_every", 0)
        options.setdefault("checkpoint_interval", 0)
        store = open_store(dsn, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., AuditStore]) -> AuditStore:
    """A store with the test HMAC key and no automatic checkpoints."""
    return make_store(hmac_key=HMAC_KEY)


@pytest.fixture
def raw(dsn: str) -> RawDb:
    """Direct access to the store's database."""
    return RawDb(dsn)
