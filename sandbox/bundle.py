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
from pathlib import Path, PurePosixPath
from typing import Any

from sandbox.base import ExecutionSpec, MiB
from sandbox.languages import Language

__all__ = ["SANDBOX_GID", "SANDBOX_UID", "BundleError", "write_bundle", "safe_relative_path"]

SANDBOX_UID = 65534  # nobody
SANDBOX_GID = 65534
INPUT_DIR = "/sandgate"
WORK_DIR = "/work"


class BundleError(ValueError):
    """A spec that cannot be laid out safely (e.g. a file path escaping /work)."""


def safe_relative_path(name: str) -> PurePosixPath:
    """Validate a user-supplied file name: relative, no `..`, no empty or odd parts."""
    if not name or "\x00" in name or "\\" in name:
        raise BundleError(f"file path {name!r} is empty or has NUL or backslash characters")
    path = PurePosixPath(name)
    if path.is_absolute():
        raise BundleError(f"file path {name!r} is absolute; paths are relative to /work")
    if any(part in ("..", ".", "") for part in name.split("/")):
        raise BundleError(f"file path {name!r} has '..', '.' or empty parts")
    if len(path.parts) > 16 or len(name) > 255:
        raise BundleError(f"file path {name!r} is too deep or too long")
    return path


def _launcher(language: Language, forwarder: str | None) -> str:
    steps = [f"cp -R {INPUT_DIR}/files/. {WORK_DIR}/", f"cd {WORK_DIR}"]
    if forwarder:
        steps.append(forwarder)
    steps.append("exec " + shlex.join([*language.command, f"{INPUT_DIR}/{language.filename}"]))
    return " && ".join(steps)


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


def write_bundle(
    bundle: Path,
    spec: ExecutionSpec,
    *,
    language: Language,
    rootfs: Path,
    cgroups_path: str,
    env: dict[str, str] | None = None,
    forwarder: str | None = None,
    extra_mounts: list[dict[str, Any]] | None = None,
) -> None:
    """Lay out `bundle/` for `runsc run`; raises BundleError before anything runs."""
    inputs = bundle / "input"
    files_dir = inputs / "files"
    files_dir.mkdir(parents=True)
    (inputs / language.filename).write_text(spec.code, encoding="utf-8")
    for name, text in spec.files.items():
        target = files_dir / safe_relative_path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    for path in [inputs, *inputs.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)

    limits = spec.limits
    process_env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": WORK_DIR,
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONPATH": WORK_DIR,
        "PYTHONDONTWRITEBYTECODE": "1",
        **(env or {}),
    }
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": SANDBOX_UID, "gid": SANDBOX_GID},
            "args": ["/bin/sh", "-c", _launcher(language, forwarder)],
            "env": [f"{k}={v}" for k, v in process_env.items()],
            "cwd": "/",
            "capabilities": {},
            "noNewPrivileges": True,
            "rlimits": [
                {
                    "type": "RLIMIT_NPROC",
                    "hard": limits.max_processes,
                    "soft": limits.max_processes,
                },
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
            _tmpfs(WORK_DIR, limits.disk_mb),
            _tmpfs("/tmp", limits.disk_mb),
            {
                "destination": INPUT_DIR,
                "type": "bind",
                "source": str(inputs),
                "options": ["rbind", "ro", "nosuid", "nodev"],
            },
            *(extra_mounts or []),
        ],
        "linux": {
            "namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")],
            "cgroupsPath": cgroups_path,
            "resources": {"memory": {"limit": limits.memory_mb * MiB}},
        },
    }
    (bundle / "config.json").write_text(json.dumps(config, indent=1))
