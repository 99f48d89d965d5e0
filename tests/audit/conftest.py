"""Fixtures for the audit tests: the same suite runs on SQLite and on a real PostgreSQL server.

The PostgreSQL server and each test's schema in it come from `tests/conftest.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandgate.audit import AuditStore, open_store
from tests.audit.helpers import HMAC_KEY, RawDb

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


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
