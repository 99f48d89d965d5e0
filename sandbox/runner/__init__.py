"""In-sandbox runners and the protocol they speak with the host (`sandgate-runner/1`).

A runner is service code, never part of an image: each sandbox gets a copy in its read-only
input tree at `/sandgate/runner<suffix>`. `python.py` is the Python runner; PROTOCOL.md is the
protocol; `protocol` is the host's side of it.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path, PurePosixPath

from sandbox.bundle import INPUT_DIR
from sandbox.languages import Language

__all__ = ["install_runner", "needs_memory_cap", "runner_argv", "runner_path"]


def runner_path(language: Language) -> Path:
    """The language's runner on the host; raises ValueError for a language without one."""
    if language.runner is None:
        raise ValueError(f"language {language.name!r} has no runner")
    return Path(str(resources.files("sandbox.runner").joinpath(language.runner)))


def _inside(language: Language) -> str:
    return f"{INPUT_DIR}/runner{PurePosixPath(runner_path(language).name).suffix}"


def install_runner(inputs: Path, language: Language) -> None:
    """Copy the runner into a sandbox's input tree (bound read-only at /sandgate)."""
    target = inputs / PurePosixPath(_inside(language)).name
    shutil.copyfile(runner_path(language), target)
    target.chmod(0o644)


def runner_argv(
    language: Language, *, memory_mb: int | None, preimport: tuple[str, ...] = ()
) -> list[str]:
    """The command that starts the runner inside the sandbox. `memory_mb` None: a sandbox
    started ahead, before any request's cap is known (see `needs_memory_cap`)."""
    if memory_mb is None and needs_memory_cap(language):
        raise ValueError(f"{language.name}'s command needs the memory cap; start it per request")
    argv = language.argv(_inside(language), memory_mb or 0)
    return argv + (["--preimport", ",".join(preimport)] if preimport else [])


def needs_memory_cap(language: Language) -> bool:
    """Whether the language's command line holds the request's memory cap (node's heap)."""
    return any("{memory_mb}" in part for part in language.command)
