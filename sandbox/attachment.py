"""What the service adds to one sandbox beyond its code: host directories, environment, a
launcher step, and a report of what happened through them. Egress fills one today."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.base import EgressAttempt, ExecutionSpec

__all__ = ["Attacher", "Attachment", "Bind", "no_attachment"]


@dataclass(frozen=True)
class Bind:
    """A host path bound into the sandbox."""

    source: Path
    target: str
    read_only: bool = True


def _no_attempts() -> list[EgressAttempt]:
    return []


@dataclass(frozen=True)
class Attachment:
    """Binds, environment variables and a shell step run before the code (`setup`).

    `needs_host_uds` is set when a bind carries a Unix socket the sandbox connects to: gVisor
    then needs `--host-uds=open`. `attempts` reports the egress attempts once the run is over.
    """

    binds: tuple[Bind, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    setup: str | None = None
    needs_host_uds: bool = False
    processes: int = 0
    attempts: Callable[[], list[EgressAttempt]] = _no_attempts


Attacher = Callable[[ExecutionSpec, Path], AbstractAsyncContextManager[Attachment]]
"""Given a spec and its per-execution directory, yields what to add to the sandbox."""


@contextlib.asynccontextmanager
async def no_attachment(_spec: ExecutionSpec, _directory: Path) -> AsyncIterator[Attachment]:
    """The attacher for a sandbox with nothing added."""
    yield Attachment()
