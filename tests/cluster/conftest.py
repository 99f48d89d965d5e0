"""A local cluster for the module: Redis, PostgreSQL, 2 API nodes and 3 workers on loopback
addresses (127.0.0.2-6), real gVisor on every worker, started with `sandgate cluster up`'s code.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandgate.audit import AuditRecord, RecordFilter, open_store
from sandgate.cluster.local import LocalCluster, Node
from sandgate.cluster.redisserver import RedisMissing
from tests.conftest import SHARED_IMAGES, _used_state_dirs
from tests.helpers import wait_for
from tests.inproc import ADMIN_KEY

DEAD_AFTER_S = 3
ENV = {
    "SANDGATE_API_KEY": ADMIN_KEY,
    "SANDGATE_MAX_CONCURRENCY": "2",
    # The warm pool off: its ready sandboxes would count as leftovers, and three workers'
    # pools would crowd two cores (the pool's own tests run on one node: tests/api/test_pool.py)
    "SANDGATE_POOL_SIZE": "0",
    "SANDGATE_QUEUE_TIMEOUT_S": "60",
    "SANDGATE_WORKER_DEAD_AFTER_S": str(DEAD_AFTER_S),
    "SANDGATE_WEBHOOK_ALLOW_PRIVATE": "true",
    "SANDGATE_WEBHOOK_ATTEMPTS": "3",
    "SANDGATE_WEBHOOK_BACKOFF_S": "0.2",
    "SANDGATE_LOG_LEVEL": "info",
}


@dataclass
class Running:
    """The running cluster and what the tests need to reach it."""

    local: LocalCluster
    nodes: list[Node]

    @property
    def api(self) -> list[str]:
        """The API nodes' base URLs."""
        return [n.url for n in self.nodes if n.role == "api"]

    def node(self, name: str) -> Node:
        """A node by name, as the manifest has it now (its current pid)."""
        return next(n for n in self.local.manifest().nodes if n.name == name)

    @property
    def workers(self) -> list[Node]:
        """The worker nodes, current pids."""
        return [n for n in self.local.manifest().nodes if n.role == "worker"]

    def client(self, url: str, timeout: float = 120, **headers: str) -> httpx.Client:
        """An admin client of one node."""
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"} | headers
        return httpx.Client(base_url=url, headers=auth, timeout=timeout)

    def ready(self, url: str) -> dict[str, Any]:
        """A node's /ready body."""
        body: dict[str, Any] = httpx.get(f"{url}/ready", timeout=10).json()
        return body

    def live_workers(self) -> list[dict[str, Any]]:
        """The workers an API node sees alive, with their load."""
        live: list[dict[str, Any]] = self.ready(self.api[0])["checks"]["workers"]["live"]
        return live

    def executions(self, prefix: str = "", action: str = "execute") -> list[AuditRecord]:
        """The `action` records so far, those of requests whose id starts with `prefix`."""
        with open_store(self.local.manifest().audit_dsn) as store:
            records = list(store.iter_records(RecordFilter(action=action)))
        return [r for r in records if (r.request_id or "").startswith(prefix)]

    def restart(self, node: Node) -> None:
        """Start a node again (as a supervisor would) unless it runs; wait until it is ready."""
        current = self.node(node.name)
        if current.pid is None or not self.local.alive(current.pid):
            self.local.start_node(node)
        wait_for(lambda: _ready(node.url), f"{node.name} ready again", timeout=60)
        if node.role == "worker":
            wait_for(lambda: len(self.live_workers()) == 3, "every worker seen again", 30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def once_each(records: list[AuditRecord], key: str = "request_id") -> Counter[str]:
    """How many records each request (or execution) has."""
    if key == "request_id":
        return Counter(r.request_id or "" for r in records)
    return Counter(str(r.details.get(key)) for r in records)


@pytest.fixture(scope="package")
def cluster() -> Iterator[Running]:
    """The cluster, up for the package's tests (started once: it takes a while) and down
    after them. Its directory is outside
    pytest's private temporary tree: PostgreSQL runs as `postgres` and must reach its data."""
    state = Path(tempfile.mkdtemp(prefix="sandgate-cluster-"))
    state.chmod(0o711)
    try:
        local = LocalCluster(state, images=SHARED_IMAGES, env=ENV)
    except RedisMissing as exc:
        pytest.fail(str(exc))
    try:
        local.up(2, 3, timeout=240)
        nodes = local.manifest().nodes
        _used_state_dirs.extend(Path(n.state_dir) for n in nodes if n.role == "worker")
        yield Running(local, nodes)
    finally:
        local.down()
        shutil.rmtree(state / "postgres", ignore_errors=True)
        shutil.rmtree(state / "redis", ignore_errors=True)
