"""Shared fixtures: a real gVisor backend on a private state directory, and real services.

A PostgreSQL server private to the test session (initdb into a temporary directory), where
each test that asks gets a schema of its own; missing binaries FAIL the session's PostgreSQL
tests with a message naming the set-up: they are never skipped.

Every test session gets its own state directory (so its sandboxes, cgroups and bundles are
its own), sharing only the built sandbox images with `make run`'s `.state/images`. At the end
of the session a check asserts that nothing of any state directory the session used is left:
no runsc process, cgroup, bundle directory, mount or socket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from sandbox.image import ImageStore
from sandbox.runsc import RunscBackend
from sandgate.cluster.pgserver import PgMissing, PgServer
from sandgate.settings import REPO_ROOT
from tests.helpers import LiveServer, leftovers_of, start_server
from tests.inproc import ADMIN_KEY

SHARED_IMAGES = REPO_ROOT / ".state" / "images"
_used_state_dirs: list[Path] = []


def make_state_dir(base: Path) -> Path:
    """A fresh state directory that shares the built images; remembered for the leftover check."""
    base.mkdir(parents=True, exist_ok=True)
    SHARED_IMAGES.mkdir(parents=True, exist_ok=True)
    (base / "images").symlink_to(SHARED_IMAGES)
    _used_state_dirs.append(base)
    return base


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that talks to the service in its own process is `live` (not in test-fast)."""
    for item in items:
        if "server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def images() -> ImageStore:
    """The image store, with the python image built (a no-op when the set-up built it)."""
    store = ImageStore(REPO_ROOT / "images", REPO_ROOT / ".state")
    store.ensure("python", progress=lambda _line: None)
    return store


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory, images: ImageStore) -> Path:
    """The session's own state directory."""
    return make_state_dir(tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="session")
def backend(state_dir: Path) -> Iterator[RunscBackend]:
    """A real runsc backend on the session's state directory."""
    backend = RunscBackend(state_dir=state_dir, images=ImageStore(REPO_ROOT / "images", state_dir))
    backend.reap()
    yield backend


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, images: ImageStore) -> Iterator[LiveServer]:
    """The real service over real HTTP, seeded with an admin key."""
    state = make_state_dir(tmp_path_factory.mktemp("server-state"))
    with start_server(state, {"SANDGATE_API_KEY": ADMIN_KEY}) as live:
        yield live


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_behind() -> Iterator[None]:
    """Fail the session if any sandbox, process, cgroup, bundle or mount outlived it, or if a
    sandbox changed the shared image (runsc creates missing mount points on the host)."""
    roots = sorted(SHARED_IMAGES.glob("*/rootfs"))
    before = {root: sorted(os.listdir(root)) for root in roots}
    yield
    found = [item for state in _used_state_dirs for item in leftovers_of(state)]
    assert not found, f"left behind after the test session: {found}"
    after = {root: sorted(os.listdir(root)) for root in roots if root.exists()}
    assert after == {r: v for r, v in before.items() if r in after}, "an image was modified"


@pytest.fixture(autouse=True)
def _scrubbed_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own SANDGATE_* settings out of the tests."""
    for name in list(os.environ):
        if name.startswith("SANDGATE_"):
            monkeypatch.delenv(name)


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
