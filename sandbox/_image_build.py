"""How one root filesystem is made from a recipe: debootstrap, apt, the recipe's script, cleanup.

Everything comes from Debian's archive (`mirror`): `debootstrap --variant=minbase` lays down the
base system, then `apt-get install --no-install-recommends` installs the recipe's packages inside
it (apt, unlike debootstrap's own resolver, understands virtual packages and alternatives, which
npm's and scipy's dependencies need). Commands run with a fixed environment, never the caller's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "BUILDER_VERSION",
    "ImageError",
    "Recipe",
    "build_rootfs",
    "disk_usage",
    "installed_packages",
]

BUILDER_VERSION = "2"
"""Part of every recipe hash: bumped when a build from the same recipe would differ (2: packages
by apt instead of debootstrap's resolver, mount points, no host DNS settings, packages.txt)."""

# What every image gets: the mount points the sandbox uses (runsc would otherwise create them
# on the host, in the shared image) and no package lists, caches, docs or host DNS settings.
MOUNT_POINTS = ("work", "sandgate")
CLEANUP = (
    "apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /usr/share/doc/* "
    "/usr/share/man/* /var/log/apt/* /var/log/dpkg.log && : > /etc/resolv.conf"
)
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
# Per-package lines of debootstrap and apt: hundreds per image, the rest carries the progress.
_QUIET = ("I: Retrieving", "I: Validating", "Get:", "Selecting previously", "Preparing to unpack")


class ImageError(RuntimeError):
    """An image is missing or could not be built (then the message ends with the failed step's
    last lines of output)."""


class Recipe(BaseModel):
    """`images/<name>/recipe.yaml`."""

    model_config = ConfigDict(extra="forbid")

    suite: str = "bookworm"
    variant: str = "minbase"
    packages: list[str] = Field(default_factory=list)


def build_rootfs(
    recipe: Recipe, folder: Path, rootfs: Path, mirror: str, progress: Callable[[str], None]
) -> None:
    """Make `rootfs` from `recipe` (its folder may hold `customize.sh`, run inside as root)."""
    if shutil.which("debootstrap") is None:
        raise ImageError("debootstrap is not installed (apt-get install debootstrap)")
    _run(
        ["debootstrap", f"--variant={recipe.variant}", recipe.suite, str(rootfs), mirror],
        progress,
    )
    chroot = ["chroot", str(rootfs)]
    if recipe.packages:
        apt = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "Dpkg::Use-Pty=0"]
        _run([*chroot, *apt, *recipe.packages], progress, DEBIAN_FRONTEND="noninteractive")
    for point in MOUNT_POINTS:
        (rootfs / point).mkdir(exist_ok=True)
    customize = folder / "customize.sh"
    if customize.is_file():
        shutil.copy(customize, rootfs / "customize.sh")
        try:
            _run([*chroot, "/bin/sh", "/customize.sh"], progress)
        finally:
            (rootfs / "customize.sh").unlink()
    _run([*chroot, "/bin/sh", "-c", CLEANUP], progress)


def installed_packages(rootfs: Path) -> str:
    """`package version` lines of what dpkg installed in `rootfs`, sorted."""
    query = ["chroot", str(rootfs), "dpkg-query", "-W", "-f=${Package} ${Version}\\n"]
    listed = subprocess.run(query, env=_ENV, capture_output=True, text=True, check=True)
    return "\n".join(sorted(listed.stdout.splitlines())) + "\n"


def disk_usage(root: Path) -> int:
    """Bytes `root` takes on disk, as `du` counts them (each hard-linked file once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            st = os.lstat(os.path.join(directory, name))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total + os.lstat(root).st_blocks * 512


def _run(cmd: list[str], progress: Callable[[str], None], **env: str) -> None:
    progress(" ".join(cmd) if len(cmd) < 12 else " ".join([*cmd[:11], "..."]))
    with subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**_ENV, **env},
        text=True,
        errors="replace",
    ) as proc:
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            line = line.rstrip()
            tail = [*tail[-20:], line]
            if line and not line.startswith(_QUIET):
                progress(line)
    if proc.returncode != 0:
        step = " ".join(cmd[:4])
        raise ImageError(f"{step} failed ({proc.returncode}):\n" + "\n".join(tail))
