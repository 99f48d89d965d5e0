"""The backend's connection to the Docker daemon: SDK clients, blocking calls run on the
backend's own threads, and daemon failures translated to `SandboxUnavailable` where they enter.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import requests
from docker.errors import DockerException, NotFound

from sandbox.base import SandboxUnavailable

__all__ = ["API_VERSION", "DAEMON_ERRORS", "DockerCalls", "short"]

T = TypeVar("T")

API_VERSION = "1.41"  # Docker Engine 20.10 (Debian's); newer engines still speak it
DAEMON_ERRORS = (DockerException, requests.RequestException, OSError)
"""What the SDK raises when the daemon is down, refuses, or fails."""


def short(exc: BaseException) -> str:
    """An error's message, cut to a length fit for logs and readiness details."""
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."


def _client(base_url: str | None, timeout: float) -> Any:
    """An SDK client; the API version is pinned so that making one never contacts the daemon."""
    if base_url is None:  # DOCKER_HOST and friends, as the docker CLI reads them
        return docker.from_env(version=API_VERSION, timeout=timeout).api
    return docker.APIClient(base_url=base_url, version=API_VERSION, timeout=timeout)


class DockerCalls:
    """`api` for the work (long timeout), `quick` for readiness (5 s), and `call` to run a
    blocking SDK call without blocking the event loop."""

    def __init__(self, base_url: str | None, timeout_s: float) -> None:
        self.api = _client(base_url, timeout_s)
        self.quick = _client(base_url, 5.0)
        # Not the loop's default executor: a blocked daemon must not starve everyone else.
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="sandgate-docker")

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` on the pool; daemon failures become SandboxUnavailable (503)."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        except NotFound:
            raise  # callers tell a missing image or an already removed container apart
        except DAEMON_ERRORS as exc:
            self.api.close()  # drop pooled connections to the dead daemon, not leak them
            if "no space left on device" in str(exc):
                raise SandboxUnavailable(
                    f"the Docker data root is full (free space there): {short(exc)}"
                ) from exc
            raise SandboxUnavailable(f"the Docker daemon failed: {short(exc)}") from exc

    def close(self) -> None:
        """Close the connections and the threads."""
        self.api.close()
        self.quick.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
