"""What a backend instance leaves on the host, found and removed the same way for every backend.

A backend names its footprint: the cgroup parent its sandboxes' cgroups live under (in every
controller), the directories it keeps per-execution files in, and optionally a marker that its
processes carry on their command line (runsc's `--root=<dir>`). `leftovers()` lists what is
there now; `reap()` kills and removes all of it, for a start-up after a crash.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import psutil

from sandbox.cgroup import REMOVE_TIMEOUT_S, remove_tree

__all__ = ["Footprint", "processes_with"]


def processes_with(marker: str) -> list[psutil.Process]:
    """Host processes with `marker` as one of their command-line arguments."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if marker in (proc.info["cmdline"] or []):
                found.append(proc)
    return found


@dataclass(frozen=True)
class Footprint:
    """Where one backend instance's sandboxes live on the host.

    `directories` maps a label (`bundle`, `run dir`) to a directory whose entries are one
    execution's each; `reap` empties them, and those in `scratch` too (unlisted: runtime state
    that is gone once its execution is).
    """

    cgroup_root: Path
    cgroup_parent: str
    directories: tuple[tuple[str, Path], ...]
    scratch: tuple[Path, ...] = ()
    process_marker: str | None = None

    def processes(self) -> list[psutil.Process]:
        """Processes carrying the marker (none when there is no marker)."""
        return processes_with(self.process_marker) if self.process_marker else []

    def _kept(self, proc: psutil.Process, keep: Collection[str]) -> bool:
        """Whether `proc` belongs to a sandbox kept on purpose, judged by the command line it
        was found with (a process that exits meanwhile has none left to read), or is gone."""
        cmdline = " ".join(getattr(proc, "info", {}).get("cmdline") or ())
        if any(name in cmdline for name in keep):
            return True
        with contextlib.suppress(psutil.Error):
            return proc.status() == psutil.STATUS_ZOMBIE  # exited, its parent not yet told
        return True  # gone since it was found

    def cgroups(self) -> list[Path]:
        """Every sandbox cgroup under the parent, in every controller."""
        found: list[Path] = []
        for controller in sorted(self.cgroup_root.iterdir()):
            parent = controller / self.cgroup_parent
            if parent.is_dir():
                found += sorted(p for p in parent.iterdir() if p.is_dir())
        return found

    def leftovers(self, keep: Collection[str] = ()) -> list[str]:
        """What is on the host now: marked processes, cgroups, directory entries; but those
        named in `keep` (sandboxes kept on purpose: their names appear in their cgroup's and
        directory's names and their processes' command lines)."""
        found = [f"process {p.pid}" for p in self.processes() if not self._kept(p, keep)]
        found += [f"cgroup {p}" for p in self.cgroups() if p.name not in keep]
        for label, directory in self.directories:
            if directory.is_dir():
                found += [f"{label} {p}" for p in sorted(directory.iterdir()) if p.name not in keep]
        return found

    def reap(self) -> int:
        """Kill the marked processes, remove the cgroups and empty the directories; return how
        many things were removed."""
        reaped = 0
        for proc in self.processes():
            with contextlib.suppress(psutil.Error):
                proc.kill()
                reaped += 1
        psutil.wait_procs(self.processes(), timeout=5)
        reaped += len(self.cgroups())
        deadline = time.monotonic() + REMOVE_TIMEOUT_S
        for controller in self.cgroup_root.iterdir():
            remove_tree(controller / self.cgroup_parent, deadline)
        for directory in (*(d for _, d in self.directories), *self.scratch):
            if directory.is_dir():
                reaped += sum(1 for _ in directory.iterdir())
                shutil.rmtree(directory, ignore_errors=True)
            directory.mkdir(parents=True, exist_ok=True)
        return reaped
