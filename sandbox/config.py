"""What the service builds a backend from: one typed record, whichever backend it names.

Every backend takes the shared parts: the state directory, the images, and the attacher that
gives executions their egress proxy (None: no proxy, so a spec with egress is refused or runs
without network, as the backend documents), the host-wide cap on running sandboxes that a warm
pool's refill must stay within, the pool's options and who is told what it does. The rest are
one backend's own options, prefixed with its name as the service's settings are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sandbox.attachment import Attacher
from sandbox.cgroup import CGROUP_ROOT
from sandbox.image import ImageStore
from sandbox.pool import NO_POOL, PoolObserver, PoolOptions
from sandbox.slots import SandboxSlots

__all__ = ["BackendConfig"]


@dataclass(frozen=True)
class BackendConfig:
    """The parts and options of one backend instance (see `SandboxBackend.from_config`)."""

    state_dir: Path
    images: ImageStore
    attacher: Attacher | None = None
    slots: SandboxSlots | None = None
    pool: PoolOptions = NO_POOL
    observer: PoolObserver | None = None
    runsc_path: str = "runsc"
    runsc_platform: str = "ptrace"
    docker_url: str | None = None
    docker_runtime: str = "runsc"
    docker_uds_runtime: str | None = None
    docker_allow_runc: bool = False
    docker_cgroup_root: Path = CGROUP_ROOT
