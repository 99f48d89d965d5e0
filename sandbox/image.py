"""Sandbox images: root filesystems built by debootstrap from a recipe under `images/<name>/`.

An image is cached under `<state>/images/<name>-<hash>/` where the hash covers every file of the
recipe, so a changed recipe builds a new image. A build goes into a temporary directory that is
renamed into place only when complete: an image directory is whole or absent, never half-built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DOCKER_REPOSITORY", "ImageError", "ImageStore", "Recipe"]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DOCKER_REPOSITORY = "sandgate"


class ImageError(RuntimeError):
    """An image is missing or could not be built."""


class Recipe(BaseModel):
    """`images/<name>/recipe.yaml`."""

    model_config = ConfigDict(extra="forbid")

    suite: str = "bookworm"
    variant: str = "minbase"
    packages: list[str] = Field(default_factory=list)


class ImageStore:
    """Finds, builds and garbage-collects the images of one state directory."""

    def __init__(self, recipes_dir: Path, state_dir: Path, mirror: str = DEFAULT_MIRROR) -> None:
        self.recipes_dir = recipes_dir.resolve()
        self.root = state_dir.resolve() / "images"
        self.mirror = mirror

    def recipe_hash(self, name: str) -> str:
        """SHA-256 (first 16 hex digits) over the recipe folder's file names and contents."""
        folder = self.recipes_dir / name
        if not (folder / "recipe.yaml").is_file():
            raise ImageError(f"no image recipe {folder / 'recipe.yaml'}")
        digest = hashlib.sha256()
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

    def ensure(self, name: str, progress: Callable[[str], None] = print) -> Path:
        """Build the image if the current recipe has none; return its root filesystem."""
        final = self.path(name)
        if (final / "rootfs").is_dir():
            progress(f"image {name}: up to date ({final.name})")
            return final / "rootfs"
        recipe = Recipe.model_validate(
            yaml.safe_load((self.recipes_dir / name / "recipe.yaml").read_text()) or {}
        )
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".build-{final.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            self._build(name, recipe, tmp, progress)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._collect(name, keep=final)
        progress(f"image {name}: built {final}")
        return final / "rootfs"

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

    def _build(self, name: str, recipe: Recipe, tmp: Path, progress: Callable[[str], None]) -> None:
        if shutil.which("debootstrap") is None:
            raise ImageError("debootstrap is not installed (apt-get install debootstrap)")
        rootfs = tmp / "rootfs"
        started = time.monotonic()
        cmd = ["debootstrap", f"--variant={recipe.variant}"]
        if recipe.packages:
            cmd.append("--include=" + ",".join(recipe.packages))
        cmd += [recipe.suite, str(rootfs), self.mirror]
        progress(f"image {name}: {' '.join(cmd)}")
        self._stream(cmd, progress, f"image {name}: ")
        customize = self.recipes_dir / name / "customize.sh"
        if customize.is_file():
            shutil.copy(customize, rootfs / "customize.sh")
            try:
                self._stream(
                    ["chroot", str(rootfs), "/bin/sh", "/customize.sh"], progress, f"image {name}: "
                )
            finally:
                (rootfs / "customize.sh").unlink()
        manifest = {
            "name": name,
            "recipe_hash": self.recipe_hash(name),
            "recipe": recipe.model_dump(),
            "mirror": self.mirror,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "build_seconds": round(time.monotonic() - started, 1),
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))

    @staticmethod
    def _stream(cmd: list[str], progress: Callable[[str], None], prefix: str) -> None:
        with subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace"
        ) as proc:
            assert proc.stdout is not None
            tail: list[str] = []
            for line in proc.stdout:
                line = line.rstrip()
                tail = [*tail[-20:], line]
                if line.startswith(("I: Retrieving", "I: Validating")):
                    continue  # hundreds of lines; the phase lines below carry the progress
                progress(prefix + line)
        if proc.returncode != 0:
            raise ImageError(f"{cmd[0]} failed ({proc.returncode}):\n" + "\n".join(tail))

    def _collect(self, name: str, keep: Path) -> None:
        """Remove older builds of `name` and abandoned temporary builds."""
        for old in self.root.glob(f"{name}-*"):
            if old != keep and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        for tmp in self.root.glob(f".build-{name}-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 0)
        return True
    return False
