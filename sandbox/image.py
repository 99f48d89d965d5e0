"""Sandbox images: root filesystems built by debootstrap from a recipe under `images/<name>/`.

An image is cached under `<state>/images/<name>-<hash>/` where the hash covers every file of the
recipe and the builder's version, so a changed recipe or build method builds a new image. A
build goes into a temporary directory that is renamed into place only when complete: an image
directory is whole or absent, never half-built.
Two builders of one image (two commands, or a command and a test session) take turns on a lock
file; the second finds the first's image built.

    <state>/images/<name>-<hash>/rootfs          the root filesystem
    <state>/images/<name>-<hash>/manifest.json   recipe, mirror, build time, size
    <state>/images/<name>-<hash>/packages.txt    every Debian package in it, with its version
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

from sandbox._image_build import (
    BUILDER_VERSION,
    ImageError,
    Recipe,
    build_rootfs,
    disk_usage,
    installed_packages,
)

__all__ = ["BUILD_JOBS", "DOCKER_REPOSITORY", "ImageError", "ImageStatus", "ImageStore", "Recipe"]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DOCKER_REPOSITORY = "sandgate"
MANIFEST = "manifest.json"
# Builds at once: they wait on downloads and dpkg more than on the CPU (all four images took
# 3 min 37 s four at a time on 2 cores, 3 min 54 s two at a time).
BUILD_JOBS = 4


class ImageStatus(BaseModel):
    """One image as `/ready` and `sandgate image list` show it."""

    name: str
    recipe_hash: str = Field(description="First 16 hex digits of SHA-256 over the recipe folder.")
    built: bool = Field(description="The current recipe's root filesystem is there, whole.")
    size_bytes: int | None = Field(None, description="Disk usage of the root filesystem.")
    built_at: str | None = None
    build_seconds: float | None = None


class ImageStore:
    """Finds, builds, lists and garbage-collects the images of one state directory."""

    def __init__(self, recipes_dir: Path, state_dir: Path, mirror: str = DEFAULT_MIRROR) -> None:
        self.recipes_dir = recipes_dir.resolve()
        self.root = state_dir.resolve() / "images"
        self.mirror = mirror

    def names(self) -> list[str]:
        """Every recipe under the recipes folder, sorted."""
        return sorted(p.parent.name for p in self.recipes_dir.glob("*/recipe.yaml"))

    def recipe_hash(self, name: str) -> str:
        """SHA-256 (first 16 hex digits) over the builder's version and the recipe folder's file
        names and contents."""
        folder = self.recipes_dir / name
        if not (folder / "recipe.yaml").is_file():
            raise ImageError(f"no image recipe {folder / 'recipe.yaml'}")
        digest = hashlib.sha256(BUILDER_VERSION.encode() + b"\0")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(str(path.relative_to(folder)).encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def path(self, name: str) -> Path:
        """Where the current recipe's image lives (whether built or not)."""
        return self.root / f"{name}-{self.recipe_hash(name)}"

    def rootfs(self, name: str) -> Path:
        """The built root filesystem; raises ImageError naming the build command if absent."""
        rootfs = self.path(name) / "rootfs"
        if not rootfs.is_dir():
            raise ImageError(
                f"sandbox image {name!r} is not built for the current recipe; "
                f"run `sandgate image build {name}`"
            )
        return rootfs

    def status(self, name: str) -> ImageStatus:
        """The image's recipe hash, whether it is built, and its size and build time if so."""
        final = self.path(name)
        if not (final / "rootfs").is_dir():
            return ImageStatus(name=name, recipe_hash=self.recipe_hash(name), built=False)
        manifest = _read_manifest(final)
        if "size_bytes" not in manifest:  # built before sizes were recorded: measure once
            manifest["size_bytes"] = disk_usage(final / "rootfs")
            with contextlib.suppress(OSError):  # a read-only state directory: measure again
                _write_manifest(final, manifest)
        return ImageStatus(
            name=name,
            recipe_hash=self.recipe_hash(name),
            built=True,
            size_bytes=manifest["size_bytes"],
            built_at=manifest.get("built_at"),
            build_seconds=manifest.get("build_seconds"),
        )

    def statuses(self) -> list[ImageStatus]:
        """`status` of every recipe (what `/ready` lists)."""
        return [self.status(name) for name in self.names()]

    def ensure(self, name: str, progress: Callable[[str], None] = print) -> Path:
        """Build the image if the current recipe has none; return its root filesystem."""
        final = self.path(name)
        say = _prefixed(progress, f"image {name}: ")
        if not (final / "rootfs").is_dir():
            with self._lock(name, say):
                if not (final / "rootfs").is_dir():  # another builder may have finished it
                    self._build(name, final, say)
                    self._collect(name, keep=final)
                    done = self.status(name)
                    say(f"built in {done.build_seconds:.0f} s, {_mib(done.size_bytes)} ({final})")
                    return final / "rootfs"
        say(f"up to date ({final.name}, {_mib(self.status(name).size_bytes)})")
        return final / "rootfs"

    def ensure_many(
        self, names: Iterable[str], jobs: int = BUILD_JOBS, progress: Callable[[str], None] = print
    ) -> list[ImageStatus]:
        """Build several images, `jobs` at a time (debootstrap is mostly download and dpkg);
        every build runs to its end, then ImageError names each one that failed."""
        wanted = list(dict.fromkeys(names))
        for name in wanted:
            self.recipe_hash(name)  # an unknown name fails before anything is built
        failed: list[str] = []

        def one(name: str) -> None:
            try:
                self.ensure(name, progress)
            except ImageError as exc:
                failed.append(f"{name}: {exc}")

        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            list(pool.map(one, wanted))
        if failed:
            raise ImageError("\n".join(failed))
        return [self.status(name) for name in wanted]

    def docker_tag(self, name: str) -> str:
        """The Docker image of the current recipe: `sandgate/<name>:<recipe hash>`."""
        return f"{DOCKER_REPOSITORY}/{name}:{self.recipe_hash(name)}"

    def ensure_docker(self, name: str, api: Any, progress: Callable[[str], None] = print) -> str:
        """Import the built root filesystem into Docker (`docker import`, streamed from `tar`)
        unless the current recipe's tag is there; drop older tags of the image; return the tag.

        `api` is a `docker.APIClient`. Nothing is pulled: no registry is needed.
        """
        from docker.errors import APIError, ImageNotFound

        tag = self.docker_tag(name)
        repository, _, version = tag.rpartition(":")
        try:
            api.inspect_image(tag)
            progress(f"image {name}: Docker image {tag} up to date")
        except ImageNotFound:
            rootfs = self.ensure(name, progress)
            progress(f"image {name}: importing {rootfs} into Docker as {tag}")
            cmd = ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."]
            with subprocess.Popen(cmd, stdout=subprocess.PIPE) as tar:
                assert tar.stdout is not None
                chunks = iter(lambda: tar.stdout.read(1 << 20), b"")  # type: ignore[union-attr]
                api.import_image_from_data(chunks, repository=repository, tag=version)
            if tar.returncode != 0:
                api.remove_image(tag, force=True)
                raise ImageError(f"tar of {rootfs} failed ({tar.returncode})") from None
        for image in api.images(name=repository):
            for old in image.get("RepoTags") or []:
                if old != tag:
                    try:
                        api.remove_image(old)
                        progress(f"image {name}: removed the older Docker image {old}")
                    except APIError as exc:  # still used by a container: the next build retries
                        progress(f"image {name}: kept {old} ({exc.explanation})")
        return tag

    @contextlib.contextmanager
    def _lock(self, name: str, say: Callable[[str], None]) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".lock-{name}", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                say("another build of this image is running; waiting for it")
                fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _build(self, name: str, final: Path, say: Callable[[str], None]) -> None:
        recipe = Recipe.model_validate(
            yaml.safe_load((self.recipes_dir / name / "recipe.yaml").read_text()) or {}
        )
        tmp = self.root / f".build-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        started = time.monotonic()
        try:
            rootfs = tmp / "rootfs"
            build_rootfs(recipe, self.recipes_dir / name, rootfs, self.mirror, say)
            (tmp / "packages.txt").write_text(installed_packages(rootfs))
            manifest = {
                "name": name,
                "recipe_hash": self.recipe_hash(name),
                "recipe": recipe.model_dump(),
                "mirror": self.mirror,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "build_seconds": round(time.monotonic() - started, 1),
                "size_bytes": disk_usage(rootfs),
            }
            _write_manifest(tmp, manifest)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _collect(self, name: str, keep: Path) -> None:
        """Remove older builds of `name` and abandoned temporary builds."""
        for old in self.root.glob(f"{name}-*"):
            if old != keep and old.is_dir() and _hash_suffixed(old.name, name):
                shutil.rmtree(old, ignore_errors=True)
        for tmp in self.root.glob(f".build-{name}-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)


def _hash_suffixed(directory: str, name: str) -> bool:
    """`python-0123abcd...` is a build of `python`; `python-data-0123...` is not."""
    suffix = directory[len(name) + 1 :]
    return len(suffix) == 16 and all(c in "0123456789abcdef" for c in suffix)


def _read_manifest(image_dir: Path) -> dict[str, Any]:
    try:
        found: dict[str, Any] = json.loads((image_dir / MANIFEST).read_text())
        return found
    except (OSError, ValueError):
        return {}


def _write_manifest(image_dir: Path, manifest: dict[str, Any]) -> None:
    aside = image_dir / f".{MANIFEST}.{os.getpid()}.{threading.get_ident()}"
    aside.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(aside, image_dir / MANIFEST)


def _prefixed(progress: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda line: progress(prefix + line)


def _mib(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / (1 << 20):.0f} MiB"


def _alive(pid: int) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 0)
        return True
    return False
