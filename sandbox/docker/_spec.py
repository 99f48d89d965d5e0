"""What one Docker sandbox is made of: its input directory, its command, its container config.

Inside the container (the same view as the runsc backend's, see `sandbox.bundle`):
    /            the image, read-only
    /sandgate    main.py, files/ and stdin from a per-execution host directory, read-only
    /work, /tmp  size-capped tmpfs owned by the sandbox user
plus whatever an `Attachment` binds in (the egress proxy's socket directory, /sandgate/egress).
"""

from __future__ import annotations

import shlex
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
from sandbox.runner import install_runner, runner_argv
from sandbox.runner.protocol import execute_frame

__all__ = ["STDIN_FILE", "container_config", "write_docker_inputs"]

STDIN_FILE = "stdin"


def write_docker_inputs(
    directory: Path, spec: ExecutionSpec, language: Language, token: str | None
) -> None:
    """The /sandgate tree plus `stdin`: the program reads its stdin from a file, not a pipe
    through the daemon (nothing to stream, nothing to block on). With a runner (`token` names
    its records) the tree holds the runner, and `stdin` starts with the code's frame."""
    stdin = (spec.stdin or "").encode("utf-8")
    if token is None:
        write_inputs(directory, spec, language)
    else:
        directory.mkdir(parents=True)
        install_runner(directory, language)
        stdin = execute_frame(spec, token) + stdin
    (directory / STDIN_FILE).write_bytes(stdin)
    (directory / STDIN_FILE).chmod(0o644)


def _command(language: Language, limits: Limits, attachment: Attachment) -> list[str]:
    redirect = f"exec < {INPUT_DIR}/{STDIN_FILE}"
    setup = f"{attachment.setup}\n{redirect}" if attachment.setup else redirect
    env = {**BASE_ENV, **language.env, **attachment.env}
    script = (
        f"set -e\n{setup}\nexec {shlex.join(runner_argv(language, memory_mb=limits.memory_mb))}"
        if language.runner
        else launcher(language, limits, setup)
    )
    # `env -i`: exactly the runsc backend's environment; Docker would add HOSTNAME.
    return [
        "/usr/bin/env",
        "-i",
        *(f"{k}={v}" for k, v in env.items()),
        "/bin/sh",
        "-c",
        script,
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
