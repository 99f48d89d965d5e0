"""The Docker backend: one container per execution on a Docker runtime (gVisor's `runsc`).

`backend` holds `DockerBackend`; the private modules are its parts: `_client` (the SDK clients
and the daemon's errors), `_spec` (what a container is made of), `_stream` (the attach stream,
demultiplexed) and `_supervise` (one container from start to exit).
"""

from __future__ import annotations

from sandbox.docker._client import API_VERSION
from sandbox.docker.backend import DockerBackend

__all__ = ["API_VERSION", "DockerBackend"]
