"""Test helpers: start the real service in a child process and find what it left behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from sandbox.image import ImageStore
from sandbox.runsc import RunscBackend
from sandgate.settings import REPO_ROOT

__all__ = ["LiveServer", "LoopThread", "free_port", "leftovers_of", "start_server", "wait_for"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """A running service: its URL, an admin key, its state directory and its process."""

    url: str
    key: str
    state_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def client(self, key: str | None = None, timeout: float = 60) -> httpx.Client:
        """An HTTP client authenticated with `key` (default: the admin key)."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {key or self.key}"},
            timeout=timeout,
        )

    def log(self) -> str:
        """Everything the service logged so far."""
        return self.log_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The service's JSON log lines so far, only those of event `name` when given."""
        lines = [json.loads(line) for line in self.log().splitlines() if line.startswith("{")]
        return [line for line in lines if name in (None, line.get("event"))]

    def new_key(self, name: str, tenant: str = "default", scopes: tuple[str, ...] = ()) -> str:
        """A new key made the way an operator makes one: `sandgate keys create`."""
        flags = [arg for scope in scopes for arg in ("--scope", scope)]
        made = subprocess.run(
            [
                sys.executable,
                "-m",
                "sandgate",
                "keys",
                "create",
                "--name",
                name,
                "--tenant",
                tenant,
                *flags,
            ],
            env={"SANDGATE_STATE_DIR": str(self.state_dir), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        return made.stdout.strip()


@contextlib.contextmanager
def start_server(state_dir: Path, env: dict[str, str]) -> Iterator[LiveServer]:
    """Run `sandgate serve` on a free port until the block ends, then stop it gracefully."""
    port = free_port()
    log_path = state_dir / "service.log"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SANDGATE_")},
        "SANDGATE_STATE_DIR": str(state_dir),
        "SANDGATE_PORT": str(port),
        "SANDGATE_HOST": "127.0.0.1",
        **env,
    }
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "sandgate", "serve"],
            env=full_env,
            cwd=REPO_ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    live = LiveServer(
        f"http://127.0.0.1:{port}", env.get("SANDGATE_API_KEY", ""), state_dir, process, log_path
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"service exited early:\n{live.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{live.url}/health", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"service did not start:\n{live.log()[-3000:]}")
            time.sleep(0.1)
        yield live
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def leftovers_of(state_dir: Path) -> list[str]:
    """Processes, cgroups, bundles, mounts and sockets of a state directory still on the host."""
    backend = RunscBackend(state_dir=state_dir, images=ImageStore(REPO_ROOT / "images", state_dir))
    found = backend.leftovers()
    resolved = str(state_dir.resolve())
    with open("/proc/mounts") as mounts:
        found += [f"mount {line.split()[1]}" for line in mounts if resolved in line]
    # os.walk, not rglob: a bundle removed while it is walked (the very removal a test may be
    # waiting for) is skipped rather than raised.
    found += [
        f"socket {Path(root) / name}"
        for root, _dirs, names in os.walk(state_dir)
        for name in names
        if name.endswith(".sock")
    ]
    return found


T = TypeVar("T")


class LoopThread:
    """An event loop on a thread of its own, for a backend whose background work (the warm
    pool's refill) must outlive each test's call: `run` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        """Run `coro` on the loop; its result, or its exception."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop and its thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


def wait_for(check: Callable[[], T], what: str = "condition", timeout: float = 15) -> T:
    """Poll `check` until it returns something true, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"never saw {what} within {timeout:g} s"
        time.sleep(0.1)
    return value
