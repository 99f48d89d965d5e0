"""What one Docker sandbox is made of: its input directory, its command, its container config.

Inside the container (the same view as the runsc backend's, see `sandbox.bundle`):
    /            the image, read-only
    /sandgate    main.py, files/ and stdin from a per-execution host directory, read-only
    /work, /tmp  size-capped tmpfs owned by the sandbox user
plus whatever an `Attachment` binds in (the egress proxy's socket directory).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.types import LogConfig, Ulimit

from sandbox.base import EgressAttempt, ExecutionSpec, MiB
from sandbox.bundle import INPUT_DIR, SANDBOX_GID, SANDBOX_UID, WORK_DIR, safe_relative_path
from sandbox.cgroup import PIDS_BASE, PIDS_PER_PROCESS
from sandbox.languages import Language

__all__ = ["Attachment", "Bind", "container_config", "write_inputs"]

# The same environment the runsc backend gives; `env -i` drops what Docker adds (HOSTNAME).
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORK_DIR,
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONPATH": WORK_DIR,
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass(frozen=True)
class Bind:
    """A host path bound into the sandbox (the host path as the Docker daemon sees it)."""

    source: Path
    target: str
    read_only: bool = True


def _no_attempts() -> list[EgressAttempt]:
    return []


@dataclass(frozen=True)
class Attachment:
    """What the service adds to one container: binds, environment, a launcher step.

    Egress fills it: a bind of the directory holding the proxy's Unix socket (reachable because
    the runtime runs with `--host-uds=open`), the proxy variables, the forwarder's start
    command as `setup` (a shell step run before the code), and `attempts` to report.
    """

    binds: tuple[Bind, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    setup: str | None = None
    attempts: Callable[[], list[EgressAttempt]] = _no_attempts


def write_inputs(directory: Path, spec: ExecutionSpec, language: Language) -> None:
    """Lay out the read-only /sandgate tree; raises BundleError on an unsafe file name."""
    files_dir = directory / "files"
    files_dir.mkdir(parents=True)
    (directory / language.filename).write_text(spec.code, encoding="utf-8")
    (directory / "stdin").write_text(spec.stdin or "", encoding="utf-8")
    for name, text in spec.files.items():
        target = files_dir / safe_relative_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    for path in [directory, *directory.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def _command(language: Language, attachment: Attachment) -> list[str]:
    # stdin is a file, not a pipe through the daemon: nothing to stream, nothing to block on.
    steps = [f"cp -R {INPUT_DIR}/files/. {WORK_DIR}/", f"cd {WORK_DIR}"]
    if attachment.setup:
        steps.append(attachment.setup)
    run = shlex.join([*language.command, f"{INPUT_DIR}/{language.filename}"])
    steps.append(f"exec {run} < {INPUT_DIR}/stdin")
    env = {**BASE_ENV, **attachment.env}
    return [
        "/usr/bin/env",
        "-i",
        *(f"{k}={v}" for k, v in env.items()),
        "/bin/sh",
        "-c",
        " && ".join(steps),
    ]


def container_config(
    spec: ExecutionSpec,
    *,
    language: Language,
    inputs: Path,
    attachment: Attachment,
    runtime: str,
    cgroup_parent: str,
    labels: dict[str, str],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(create_container arguments, create_host_config arguments) for one execution."""
    limits = spec.limits
    memory = limits.memory_mb * MiB
    nproc = limits.max_processes
    tmpfs_options = (
        f"size={limits.disk_mb}m,mode=0700,uid={SANDBOX_UID},gid={SANDBOX_GID},exec,nosuid,nodev"
    )
    binds = {str(inputs): {"bind": INPUT_DIR, "mode": "ro"}}
    for bind in attachment.binds:
        binds[str(bind.source)] = {"bind": bind.target, "mode": "ro" if bind.read_only else "rw"}
    host = {
        "runtime": runtime,
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": memory,
        "memswap_limit": memory,
        "nano_cpus": int(limits.cpus * 1e9),
        # gVisor's own host threads count here too: a backstop, as in the runsc backend; the
        # code's own limit is RLIMIT_NPROC inside the sandbox.
        "pids_limit": PIDS_BASE + PIDS_PER_PROCESS * nproc,
        "ulimits": [
            Ulimit(name="nproc", soft=nproc, hard=nproc),
            Ulimit(name="nofile", soft=1024, hard=1024),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "tmpfs": {WORK_DIR: tmpfs_options, "/tmp": tmpfs_options},
        "binds": binds,
        "cgroup_parent": cgroup_parent,
        # Output is read from the attach stream; a flood must never land on the daemon's disk.
        "log_config": LogConfig(type="none"),
    }
    create = {
        "command": _command(language, attachment),
        "user": f"{SANDBOX_UID}:{SANDBOX_GID}",
        "working_dir": "/",
        "hostname": "sandbox",
        "labels": labels,
        "network_disabled": True,
        # Nothing inside needs a graceful stop: a daemon shutting down kills it at once.
        "stop_signal": "SIGKILL",
    }
    return create, host
