"""`sandgate cluster up|down`: a whole deployment on this one machine, for tests and for trying it.

`up` starts redis-server and PostgreSQL (both on 127.0.0.1, data under the state directory),
then N API nodes and M workers, each its own `sandgate serve --role ...` process on its own
loopback address (127.0.0.2, 127.0.0.3, ...), port and state directory, sharing the secrets
several nodes must agree on (audit HMAC key, hash secret, webhook secret: made once under
`<state>/secrets`). Keys, usage and the sessions' registry live in the cluster's PostgreSQL
with its audit log: `SANDGATE_API_KEY` (when set) is seeded there once, before any node starts
(the nodes get no key of their own), and `sandgate keys create` run with the cluster's
`audit_dsn` as `SANDGATE_STATE_DSN` makes a key every node sees. `up` returns once every node
is ready and every API node sees every worker; `<state>/cluster.json` records what runs (no
secrets), which is all `down` needs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel

from sandgate.cluster._proc import alive as _alive
from sandgate.cluster._proc import free_port
from sandgate.cluster.pgserver import PgServer
from sandgate.cluster.redisserver import RedisServer
from sandgate.keys import PostgresKeyStore
from sandgate.keys.base import ENV_KEY_NAME
from sandgate.keys.expiry import expires_at
from sandgate.policy.loader import load_policy_set
from sandgate.secretfile import persistent_secret
from sandgate.settings import REPO_ROOT

__all__ = ["ClusterError", "LocalCluster", "Node"]

MANIFEST = "cluster.json"
FIRST_ADDRESS = 2  # 127.0.0.1 is Redis's and PostgreSQL's


class ClusterError(RuntimeError):
    """The cluster could not be brought up (the message has the failing node's log tail)."""


class Node(BaseModel):
    """One service process of the cluster."""

    name: str
    role: str
    address: str
    port: int
    state_dir: Path
    pid: int | None = None

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://{self.address}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where it logs (JSON lines)."""
        return self.state_dir / "service.log"


class Manifest(BaseModel):
    """What `cluster.json` records."""

    redis_url: str
    audit_dsn: str
    nodes: list[Node]


class LocalCluster:
    """The deployment under one state directory."""

    def __init__(
        self, state_dir: Path, images: Path | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.images = images
        self.env = dict(env or {})
        self.redis = RedisServer(self.state_dir / "redis")
        self.postgres = PgServer(database="sandgate", root=self.state_dir / "postgres")
        self.processes: dict[int, subprocess.Popen[bytes]] = {}  # the nodes this object started

    @property
    def manifest_path(self) -> Path:
        """`<state>/cluster.json`."""
        return self.state_dir / MANIFEST

    def manifest(self) -> Manifest:
        """What runs, as `up` recorded it."""
        return Manifest.model_validate_json(self.manifest_path.read_text())

    def _secrets(self) -> dict[str, str]:
        folder = self.state_dir / "secrets"
        return {
            "SANDGATE_AUDIT_HMAC_KEY": persistent_secret(folder / "audit_hmac_key"),
            "SANDGATE_HASH_SECRET": persistent_secret(folder / "hash_secret"),
            "SANDGATE_WEBHOOK_SECRET": persistent_secret(folder / "webhook_secret"),
        }

    def up(self, api: int, workers: int, *, timeout: float = 180) -> dict[str, Any]:
        """Start everything; `{"api": [urls], "workers": [{"name", "pid"}]}` once ready."""
        if self.manifest_path.exists() and any(
            _alive(n.pid) for n in self.manifest().nodes if n.pid
        ):
            raise ClusterError(f"a cluster already runs in {self.state_dir}; `down` it first")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        manifest = Manifest(redis_url=self.redis.start(), audit_dsn=self.postgres.start(), nodes=[])
        self._seed_key(manifest.audit_dsn)
        roles = ["api"] * api + ["worker"] * workers
        counts = {"api": 0, "worker": 0}
        for i, role in enumerate(roles):
            counts[role] += 1
            address = f"127.0.0.{FIRST_ADDRESS + i}"
            node = Node(
                name=f"{role}-{counts[role]}",
                role=role,
                address=address,
                port=free_port(address),
                state_dir=self.state_dir / "nodes" / f"{role}-{counts[role]}",
            )
            manifest.nodes.append(node)
        self.manifest_path.write_text(manifest.model_dump_json(indent=2))
        for node in manifest.nodes:
            self.start_node(node, manifest)
        self._wait_ready(manifest, workers, timeout)
        return {
            "api": [n.url for n in manifest.nodes if n.role == "api"],
            "workers": [
                {"name": n.name, "pid": n.pid} for n in manifest.nodes if n.role == "worker"
            ],
        }

    def _seed_key(self, dsn: str) -> None:
        """Install `SANDGATE_API_KEY` (when set) in the shared key store, once for all nodes."""
        env = os.environ | self.env
        secret = env.get("SANDGATE_API_KEY")
        if not secret:
            return
        policies = load_policy_set(Path(env.get("SANDGATE_POLICY_DIR") or REPO_ROOT / "policies"))
        keys = PostgresKeyStore(dsn)
        try:
            keys.seed(secret, expires_at(policies, ENV_KEY_NAME, "default", time.time()))
        finally:
            keys.close()

    def node_env(self, node: Node, manifest: Manifest) -> dict[str, str]:
        """The environment a node runs with: the caller's (and `env`, but no key to seed),
        plus the cluster's."""
        inherited = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        return (
            {k: v for k, v in (inherited | self.env).items() if k != "SANDGATE_API_KEY"}
            | self._secrets()
            | {
                "SANDGATE_ROLE": node.role,
                "SANDGATE_NODE_NAME": node.name,
                "SANDGATE_HOST": node.address,
                "SANDGATE_PORT": str(node.port),
                "SANDGATE_STATE_DIR": str(node.state_dir),
                "SANDGATE_REDIS_URL": manifest.redis_url,
                "SANDGATE_AUDIT_DSN": manifest.audit_dsn,
            }
        )

    def start_node(self, node: Node, manifest: Manifest | None = None) -> int:
        """Start (or restart) one node's process; its pid, recorded in the manifest."""
        manifest = manifest or self.manifest()
        node.state_dir.mkdir(parents=True, exist_ok=True)
        images = node.state_dir / "images"
        if self.images is not None and not images.exists():
            images.symlink_to(self.images)
        with node.log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "sandgate", "serve"],
                env=self.node_env(node, manifest),
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node.pid = process.pid
        self.processes[process.pid] = process
        for recorded in manifest.nodes:
            if recorded.name == node.name:
                recorded.pid = process.pid
        self.manifest_path.write_text(manifest.model_dump_json(indent=2))
        return process.pid

    def alive(self, pid: int) -> bool:
        """Whether a node's process runs."""
        process = self.processes.get(pid)
        return process.poll() is None if process is not None else _alive(pid)

    def wait(self, pid: int, timeout: float = 60) -> None:
        """Wait for a node's process to end (reaping it when it is this object's child)."""
        process = self.processes.pop(pid, None)
        if process is not None:
            process.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _wait_ready(self, manifest: Manifest, workers: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = list(manifest.nodes)
        while waiting:
            node = waiting[0]
            if node.pid is not None and not self.alive(node.pid):
                raise ClusterError(f"{node.name} exited:\n{_tail(node.log_path)}")
            if _ready(node, workers):
                waiting.pop(0)
                continue
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{node.name} not ready in {timeout:g} s:\n{_tail(node.log_path)}"
                )
            time.sleep(0.2)

    def down(self, grace_s: float = 40) -> None:
        """Stop every node (SIGTERM, then SIGKILL after `grace_s`), then Redis and PostgreSQL."""
        if self.manifest_path.exists():
            nodes = [n for n in self.manifest().nodes if n.pid and self.alive(n.pid)]
            for node in nodes:
                assert node.pid is not None
                with contextlib.suppress(ProcessLookupError):
                    os.kill(node.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            for node in nodes:
                assert node.pid is not None
                while self.alive(node.pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                if self.alive(node.pid):
                    os.kill(node.pid, signal.SIGKILL)
                    self.wait(node.pid)
        self.redis.stop()
        if self.postgres.running():
            self.postgres.stop()


def _ready(node: Node, workers: int) -> bool:
    """Whether the node answers /ready with 200 (an API node: and sees `workers` workers)."""
    try:
        answer = httpx.get(f"{node.url}/ready", timeout=5)
    except httpx.HTTPError:
        return False
    if answer.status_code != 200:
        return False
    if node.role != "api":
        return True
    live = answer.json()["checks"].get("workers", {}).get("live", [])
    return len({w["name"] for w in live}) >= workers


def _tail(path: Path, size: int = 3000) -> str:
    return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"
