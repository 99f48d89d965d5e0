"""Host cgroups (v1) that hold one sandbox: limits written before start, usage read after exit.

runsc leaves a pre-created cgroup's settings alone and never deletes it ("Using pre-created
cgroup"), so the backend creates the cgroup, writes the limits itself, points the OCI spec's
`cgroupsPath` at it, reads the counters once the sandbox is gone, and removes it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CGROUP_ROOT",
    "CONTROLLERS",
    "REMOVE_TIMEOUT_S",
    "CgroupUsage",
    "SandboxCgroup",
    "kill_all",
    "remove_tree",
    "tasks_in",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
# Controllers whose files the backend writes or reads; runsc creates (and owns) the rest.
CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
# Host tasks gVisor needs besides the code's own: the sentry's threads, the gofer and one ptrace
# stub per sandboxed process (about five host threads each). A host pids limit near the code's
# own limit crashes the sentry ("newosproc"), so the host limit is only a backstop; the code's
# limit is RLIMIT_NPROC inside the sandbox.
PIDS_BASE = 128
PIDS_PER_PROCESS = 8
REMOVE_TIMEOUT_S = 10.0  # for a sandbox's killed tasks to leave its cgroups
CPU_SHARES = 1024  # the kernel's default weight; a sandbox started ahead boots at less


@dataclass(frozen=True)
class CgroupUsage:
    """Counters read from a sandbox's cgroups."""

    cpu_ns: int
    peak_memory_bytes: int
    oom_kills: int
    pids_refused: int


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _read_keyed(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def kill_all(directory: Path) -> int:
    """SIGKILL every process listed in a cgroup directory; return how many were signalled."""
    killed = 0
    with contextlib.suppress(OSError):
        for line in (directory / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line), signal.SIGKILL)
                killed += 1
    return killed


def remove_tree(directory: Path, deadline: float) -> bool:
    """Kill what is left in a cgroup tree and remove it, deepest first, trying until `deadline`
    (`time.monotonic()`) while killed tasks leave it; True when gone."""
    while directory.exists():
        for sub in sorted(
            (p for p in directory.rglob("*") if p.is_dir()),
            key=lambda p: len(p.parts),
            reverse=True,
        ):
            kill_all(sub)
            with contextlib.suppress(OSError):
                sub.rmdir()
        kill_all(directory)
        with contextlib.suppress(OSError):
            directory.rmdir()
        if not directory.exists() or time.monotonic() >= deadline:
            break
        time.sleep(0.02)  # killed tasks leave the cgroup asynchronously
    return not directory.exists()


def tasks_in(directory: Path) -> list[str]:
    """The tasks still in a cgroup tree, as `pid state name` (what a failed removal waited on)."""
    found = []
    for procs in directory.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                with contextlib.suppress(OSError, IndexError):
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    name, rest = stat.split("(", 1)[1].rsplit(")", 1)
                    found.append(f"{pid} {rest.split()[0]} {name}")
    return found


class SandboxCgroup:
    """The per-execution cgroup `<parent>/<name>` in each controller the backend manages."""

    def __init__(self, parent: str, name: str, root: Path = CGROUP_ROOT) -> None:
        self.path = f"/{parent.strip('/')}/{name}"
        self._root = root
        self._base = CgroupUsage(cpu_ns=0, peak_memory_bytes=0, oom_kills=0, pids_refused=0)

    def _dir(self, controller: str) -> Path:
        return self._root / controller / self.path.lstrip("/")

    def create(
        self,
        *,
        memory_bytes: int | None,
        max_processes: int,
        cpus: float | None,
        shares: int = CPU_SHARES,
    ) -> None:
        """Create the cgroups and write the host pids backstop, the CPU weight, and the memory
        and CPU limits when given (else they stay open until `set_limits`)."""
        for controller in CONTROLLERS:
            self._dir(controller).mkdir(parents=True, exist_ok=True)
        pids_max = PIDS_BASE + PIDS_PER_PROCESS * max_processes
        (self._dir("pids") / "pids.max").write_text(str(pids_max))
        (self._dir("cpu") / "cpu.shares").write_text(str(shares))
        if memory_bytes is not None and cpus is not None:
            self.set_limits(memory_bytes=memory_bytes, cpus=cpus)

    def set_limits(self, *, memory_bytes: int, cpus: float, shares: int = CPU_SHARES) -> None:
        """Write the memory cap (memory+swap capped to memory alone), the CPU quota and weight.
        Memory+swap may never be below memory: whichever shrinks is written first."""
        mem = self._dir("memory")
        limit, memsw = mem / "memory.limit_in_bytes", mem / "memory.memsw.limit_in_bytes"
        order = [limit, memsw] if memory_bytes <= _read_int(limit) else [memsw, limit]
        for path in order:
            if path.exists():  # memsw is absent when the kernel runs without swap accounting
                path.write_text(str(memory_bytes))
        period = 100_000
        (self._dir("cpu") / "cpu.cfs_period_us").write_text(str(period))
        (self._dir("cpu") / "cpu.cfs_quota_us").write_text(str(max(1000, int(cpus * period))))
        (self._dir("cpu") / "cpu.shares").write_text(str(shares))

    def reset_counters(self) -> None:
        """Start counting from now: what `usage` reports is what happens after this call (a
        sandbox started ahead has spent CPU and memory on its own start-up)."""
        (self._dir("cpuacct") / "cpuacct.usage").write_text("0")
        mem = self._dir("memory")
        for peak in (mem / "memory.max_usage_in_bytes", mem / "memory.memsw.max_usage_in_bytes"):
            if peak.exists():
                peak.write_text("0")  # resets the peak to the current usage
        self._base = self._counted()

    def cpu_ns(self) -> int:
        """CPU time used so far by everything in the sandbox, nanoseconds."""
        return _read_int(self._dir("cpuacct") / "cpuacct.usage")

    def process_count(self) -> int:
        """Host processes in the sandbox's cgroup (runsc, gofer, sentry, one stub per process)."""
        try:
            return len((self._dir("pids") / "cgroup.procs").read_text().split())
        except OSError:
            return 0

    def _counted(self) -> CgroupUsage:
        mem = self._dir("memory")
        return CgroupUsage(
            cpu_ns=self.cpu_ns(),
            peak_memory_bytes=_read_int(mem / "memory.max_usage_in_bytes"),
            oom_kills=_read_keyed(mem / "memory.oom_control", "oom_kill"),
            pids_refused=_read_keyed(self._dir("pids") / "pids.events", "max"),
        )

    def usage(self) -> CgroupUsage:
        """Read the counters (since `reset_counters`, if called); call after the sandbox has
        exited and before `remove`."""
        now, base = self._counted(), self._base
        return CgroupUsage(
            cpu_ns=now.cpu_ns,
            peak_memory_bytes=now.peak_memory_bytes,
            oom_kills=now.oom_kills - base.oom_kills,
            pids_refused=now.pids_refused - base.pids_refused,
        )

    def kill(self) -> None:
        """SIGKILL every host process of the sandbox."""
        kill_all(self._dir("pids"))

    def directories(self) -> list[Path]:
        """This cgroup's directory in every controller (runsc makes it in those it uses)."""
        return [controller / self.path.lstrip("/") for controller in sorted(self._root.iterdir())]

    def remove(self, timeout: float = REMOVE_TIMEOUT_S) -> bool:
        """Remove this cgroup (and any children runsc made) in every controller, waiting up to
        `timeout` in all for its killed tasks to leave (under load they take seconds)."""
        deadline = time.monotonic() + timeout
        ok = True
        for directory in self.directories():
            ok = remove_tree(directory, deadline) and ok
        return ok

    def remaining(self) -> dict[str, list[str]]:
        """Per controller whose directory is still there, the tasks it holds."""
        return {
            d.relative_to(self._root).parts[0]: tasks_in(d)
            for d in self.directories()
            if d.exists()
        }
