"""`sandgate image ...`: build the sandbox images (in parallel) and list them."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from docker.errors import DockerException

from sandbox.image import BUILD_JOBS, ImageError, ImageStatus, ImageStore
from sandgate.policy.issues import PolicySetInvalid
from sandgate.policy.loader import PolicySet, load_policy_set
from sandgate.settings import Settings

__all__ = ["image", "images_in_use"]


def images_in_use(policies: PolicySet) -> list[str]:
    """Every image some policy of the set allows, sorted."""
    return sorted({i for p in policies.policies.values() for i in p.policy.allowed_images()})


def _store(settings: Settings) -> ImageStore:
    return ImageStore(settings.images_dir, settings.state_dir, mirror=settings.debian_mirror)


def _say(line: str) -> None:
    click.echo(line, err=True)


def _table(statuses: list[ImageStatus]) -> str:
    rows = [("image", "recipe hash", "built", "size", "build time", "built at")]
    for s in statuses:
        size = f"{s.size_bytes / (1 << 20):.0f} MiB" if s.size_bytes is not None else "-"
        took = f"{s.build_seconds:.0f} s" if s.build_seconds is not None else "-"
        built = "yes" if s.built else "no"
        rows.append((s.name, s.recipe_hash, built, size, took, s.built_at or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


@click.group()
def image() -> None:
    """Sandbox images: root filesystems built with debootstrap from Debian's packages."""


@image.command("build")
@click.argument("names", nargs=-1)
@click.option("--all", "every", is_flag=True, help="Every recipe under the images folder.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1, 8),
    default=BUILD_JOBS,
    show_default=True,
    help="Images built at once (debootstrap is mostly download and dpkg).",
)
@click.option(
    "--docker/--no-docker",
    "to_docker",
    default=None,
    help="Also import into Docker as sandgate/<name>:<recipe hash> (default: when "
    "SANDGATE_BACKEND=docker).",
)
def image_build(names: tuple[str, ...], every: bool, jobs: int, to_docker: bool | None) -> None:
    """Build the named images if their recipe changed. No names: the images the policies in
    SANDGATE_POLICY_DIR allow (--all: every recipe)."""
    settings = Settings()
    if to_docker is None:
        to_docker = settings.backend == "docker"
    store = _store(settings)
    try:
        if names:
            wanted = list(names)
        elif every:
            wanted = store.names()
        else:
            wanted = images_in_use(load_policy_set(settings.policy_dir))
            _say(f"images the policies in {settings.policy_dir} allow: {', '.join(wanted)}")
        built = store.ensure_many(wanted, jobs=jobs, progress=_say)
        if to_docker:
            api = _docker_api(settings)
            for name in wanted:
                store.ensure_docker(name, api, progress=_say)
    except PolicySetInvalid as exc:
        _say(f"error: the policies do not load ({exc.issues[0]}); name the images or use --all")
        sys.exit(1)
    except ImageError as exc:
        _say(f"error: {exc}")
        sys.exit(1)
    except DockerException as exc:
        _say(f"error: Docker: {exc} (is dockerd running? .ci/docker starts it)")
        sys.exit(1)
    click.echo(_table(built))


@image.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
def image_list(as_json: bool) -> None:
    """Every recipe with its recipe hash, whether it is built, its size and build time."""
    statuses = _store(Settings()).statuses()
    if as_json:
        for status in statuses:
            click.echo(json.dumps(status.model_dump(mode="json")))
    else:
        click.echo(_table(statuses))


def _docker_api(settings: Settings) -> Any:
    import docker

    from sandbox.docker import API_VERSION

    if settings.docker_url:
        return docker.APIClient(base_url=settings.docker_url, version=API_VERSION, timeout=600)
    return docker.from_env(version=API_VERSION, timeout=600).api
