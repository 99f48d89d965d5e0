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

__all__ = ["install_runner", "runner_argv", "runner_path"]


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


def runner_argv(language: Language, preimport: tuple[str, ...] = ()) -> list[str]:
    """The command that starts the runner inside the sandbox."""
    argv = [*language.command, _inside(language)]
    return argv + (["--preimport", ",".join(preimport)] if preimport else [])
