"""What one Docker sandbox is made of: its input directory, its command, its container config.

Inside the container (the same view as the runsc backend's, see `sandbox.bundle`):
    /            the image, read-only
    /sandgate    main.py, files/ and stdin from a per-execution host directory, read-only
    /work, /tmp  size-capped tmpfs owned by the sandbox user
plus whatever an `Attachment` binds in (the egress proxy's socket directory, /sandgate/egress).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from docker.types import LogConfig, Ulimit

from sandbox.attachment import Attachment
from sandbox.base import ExecutionSpec, Limits, MiB
from sandbox.bundle import (
    BASE_ENV,
    INPUT_DIR,
    SANDBOX_GID,
    SANDBOX_UID,
    WORK_DIR,
    launcher,
    write_inputs,
)
from sandbox.cgroup import PIDS_BASE, PIDS_PER_PROCESS
from sandbox.languages import Language

__all__ = ["STDIN_FILE", "container_config", "write_docker_inputs"]

STDIN_FILE = "stdin"


def write_docker_inputs(directory: Path, spec: ExecutionSpec, language: Language) -> None:
    """The runsc backend's /sandgate tree plus `stdin`: the code reads its stdin from a file,
    not a pipe through the daemon (nothing to stream, nothing to block on)."""
    write_inputs(directory, spec, language)
    (directory / STDIN_FILE).write_text(spec.stdin or "", encoding="utf-8")
    (directory / STDIN_FILE).chmod(0o644)


def _command(language: Language, limits: Limits, attachment: Attachment) -> list[str]:
    redirect = f"exec < {INPUT_DIR}/{STDIN_FILE}"
    setup = f"{attachment.setup}\n{redirect}" if attachment.setup else redirect
    env = {**BASE_ENV, **language.env, **attachment.env}
    # `env -i`: exactly the runsc backend's environment; Docker would add HOSTNAME.
    return [
        "/usr/bin/env",
        "-i",
        *(f"{k}={v}" for k, v in env.items()),
        "/bin/sh",
        "-c",
        launcher(language, limits, setup),
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
    nproc = language.task_limit(limits.max_processes)
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
        "command": _command(language, limits, attachment),
        "user": f"{SANDBOX_UID}:{SANDBOX_GID}",
        "working_dir": "/",
        "hostname": "sandbox",
        "labels": labels,
        "network_disabled": True,
        # Nothing inside needs a graceful stop: a daemon shutting down kills it at once.
        "stop_signal": "SIGKILL",
    }
    return create, host
