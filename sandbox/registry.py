"""The backends a service can run on, by the name its settings use: an explicit table, no scan."""

from __future__ import annotations

from collections.abc import Mapping

from sandbox.base import SandboxBackend
from sandbox.docker import DockerBackend
from sandbox.runsc import RunscBackend

__all__ = ["BACKENDS", "UnknownBackend", "backend_class"]

BACKENDS: Mapping[str, type[SandboxBackend]] = {
    "runsc": RunscBackend,
    "docker": DockerBackend,
}


class UnknownBackend(ValueError):
    """A backend name that is not in the table."""


def backend_class(name: str) -> type[SandboxBackend]:
    """The backend class registered as `name`; raises UnknownBackend naming the known ones."""
    try:
        return BACKENDS[name]
    except KeyError:
        known = ", ".join(sorted(BACKENDS))
        raise UnknownBackend(f"unknown sandbox backend {name!r}; known: {known}") from None
