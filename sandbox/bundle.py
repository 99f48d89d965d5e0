"""The OCI bundle of one execution: `config.json` plus the read-only `/sandgate` input tree.

Inside the sandbox:
    /            the image's root filesystem, read-only
    /sandgate    the code, the files to copy into /work, the launcher; read-only
    /work, /tmp  size-capped tmpfs owned by the sandbox user (gVisor's own tmpfs)
Nothing else of the host is mounted; there is no network interface but loopback.
"""

from __future__ import annotations

import json
import os
import shlex
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from sandbox.attachment import Attachment, Bind
from sandbox.base import ExecutionSpec, Limits, MiB
from sandbox.languages import Language

__all__ = [
    "BASE_ENV",
    "INPUT_DIR",
    "SANDBOX_GID",
    "SANDBOX_UID",
    "WORK_DIR",
    "BundleError",
    "launcher",
    "safe_relative_path",
    "write_bundle",
    "write_config",
    "write_inputs",
]

SANDBOX_UID = 65534  # nobody
SANDBOX_GID = 65534
INPUT_DIR = "/sandgate"
WORK_DIR = "/work"
# Everything the code's environment holds: nothing of the service's own leaks in.
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORK_DIR,
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONPATH": WORK_DIR,
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONUNBUFFERED": "1",  # output reaches the host as it is written (streaming)
}


class BundleError(ValueError):
    """A spec that cannot be laid out safely (e.g. a file path escaping /work)."""


# The file system counts bytes, not characters: NAME_MAX per component; our own cap in total.
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 1024
MAX_PATH_DEPTH = 16


def safe_relative_path(name: str) -> PurePosixPath:
    """Validate a user-supplied file name: UTF-8, relative, no `..`, no empty or odd parts,
    each component at most 255 bytes and the whole at most 1024 bytes."""
    shown = ascii(name) if len(name) <= 80 else ascii(name[:80]) + "..."
    if not name or "\x00" in name or "\\" in name:
        raise BundleError(f"file path {shown} is empty or has NUL or backslash characters")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise BundleError(f"file path {shown} is not valid UTF-8") from None
    path = PurePosixPath(name)
    if path.is_absolute():
        raise BundleError(f"file path {shown} is absolute; paths are relative to /work")
    parts = name.split("/")
    if any(part in ("..", ".", "") for part in parts):
        raise BundleError(f"file path {shown} has '..', '.' or empty parts")
    if len(parts) > MAX_PATH_DEPTH:
        raise BundleError(f"file path {shown} is deeper than {MAX_PATH_DEPTH} parts")
    if len(encoded) > MAX_PATH_BYTES or any(
        len(part.encode("utf-8")) > MAX_NAME_BYTES for part in parts
    ):
        raise BundleError(
            f"file path {shown} is too long: at most {MAX_NAME_BYTES} bytes a part and "
            f"{MAX_PATH_BYTES} in all (UTF-8)"
        )
    return path


def launcher(language: Language, limits: Limits, setup: str | None = None) -> str:
    """The shell script that starts the code: copy the files into /work, run the attachments'
    setup (the egress forwarder), then exec the program so it is the sandbox's main process."""
    steps = ["set -e", f"cp -R {INPUT_DIR}/files/. {WORK_DIR}/", f"cd {WORK_DIR}"]
    if setup:
        steps.append(setup)
    script = f"{INPUT_DIR}/{language.filename}"
    steps.append("exec " + shlex.join(language.argv(script, limits.memory_mb)))
    return "\n".join(steps)


def write_inputs(directory: Path, spec: ExecutionSpec, language: Language) -> None:
    """Lay out the read-only /sandgate tree (code and files); raises BundleError first on an
    unsafe file name, before anything is written."""
    targets = [(directory / "files" / safe_relative_path(n), t) for n, t in spec.files.items()]
    (directory / "files").mkdir(parents=True)
    (directory / language.filename).write_text(spec.code, encoding="utf-8")
    if language.prelude:
        prelude = resources.files("sandbox.prelude").joinpath(language.prelude)
        (directory / "prelude").write_bytes(prelude.read_bytes())
    for target, content in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    for path in [directory, *directory.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)


def _bind(bind: Bind) -> dict[str, Any]:
    return {
        "destination": bind.target,
        "type": "bind",
        "source": str(bind.source),
        "options": ["rbind", "ro" if bind.read_only else "rw", "nosuid", "nodev"],
    }


def _tmpfs(destination: str, size_mb: int) -> dict[str, Any]:
    return {
        "destination": destination,
        "type": "tmpfs",
        "source": "tmpfs",
        "options": [
            f"size={size_mb}m",
            "mode=0700",
            f"uid={SANDBOX_UID}",
            f"gid={SANDBOX_GID}",
            "nosuid",
            "nodev",
        ],
    }


def write_config(
    bundle: Path,
    *,
    args: list[str],
    language: Language,
    rootfs: Path,
    cgroups_path: str,
    max_processes: int,
    disk_mb: int,
    memory_bytes: int | None,
    attachment: Attachment,
) -> None:
    """`bundle/config.json` for a sandbox running `args`, with `bundle/input` at /sandgate.
    `memory_bytes` None leaves memory to the cgroup, whose limit is written later."""
    nproc = language.task_limit(max_processes)
    process_env = {**BASE_ENV, **language.env, **attachment.env}
    resources = {} if memory_bytes is None else {"memory": {"limit": memory_bytes}}
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": SANDBOX_UID, "gid": SANDBOX_GID},
            "args": args,
            "env": [f"{k}={v}" for k, v in process_env.items()],
            "cwd": "/",
            "capabilities": {},
            "noNewPrivileges": True,
            "rlimits": [
                {"type": "RLIMIT_NPROC", "hard": nproc, "soft": nproc},
                {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024},
                {"type": "RLIMIT_CORE", "hard": 0, "soft": 0},
            ],
        },
        "root": {"path": str(rootfs), "readonly": True},
        "hostname": "sandbox",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            _tmpfs(WORK_DIR, disk_mb),
            _tmpfs("/tmp", disk_mb),
            {
                "destination": INPUT_DIR,
                "type": "bind",
                "source": str(bundle / "input"),
                "options": ["rbind", "ro", "nosuid", "nodev"],
            },
            *(_bind(b) for b in attachment.binds),
        ],
        "linux": {
            "namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")],
            "cgroupsPath": cgroups_path,
            "resources": resources,
        },
    }
    (bundle / "config.json").write_text(json.dumps(config, indent=1))


def write_bundle(
    bundle: Path,
    spec: ExecutionSpec,
    *,
    language: Language,
    rootfs: Path,
    cgroups_path: str,
    attachment: Attachment,
) -> None:
    """Lay out `bundle/` to run `spec`'s code as a script (a language without a runner);
    raises BundleError before anything runs."""
    write_inputs(bundle / "input", spec, language)
    write_config(
        bundle,
        args=["/bin/sh", "-c", launcher(language, spec.limits, attachment.setup)],
        language=language,
        rootfs=rootfs,
        cgroups_path=cgroups_path,
        max_processes=spec.limits.max_processes,
        disk_mb=spec.limits.disk_mb,
        memory_bytes=spec.limits.memory_mb * MiB,
        attachment=attachment,
    )
