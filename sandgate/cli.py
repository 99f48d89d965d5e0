"""The `sandgate` command: serve, manage keys, build images (and, as they land, policies, audit)."""

from __future__ import annotations

import sys
from typing import Any

import click
import docker
from docker.errors import DockerException

from sandbox.image import ImageError, ImageStore
from sandgate.audit.cli import audit
from sandgate.keys.cli import keys
from sandgate.metrics import share_metrics
from sandgate.policy.cli import policy
from sandgate.settings import Settings

__all__ = ["main"]


@click.group()
@click.version_option(package_name="sandgate")
def main() -> None:
    """Sandgate: gVisor sandboxes and screening for AI agents."""


main.add_command(policy)
main.add_command(audit)
main.add_command(keys)


@main.command()
@click.option("--host", help="Bind address (default: SANDGATE_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: SANDGATE_PORT or 8000).")
@click.option("--workers", type=int, help="uvicorn workers (default: SANDGATE_WORKERS or 1).")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Start the HTTP service."""
    import uvicorn

    settings = Settings()
    workers = workers or settings.workers
    if workers > 1:
        share_metrics(settings.state_dir / "metrics")
    uvicorn.run(
        "sandgate.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )


@main.group()
def image() -> None:
    """Sandbox images."""


@image.command("build")
@click.argument("names", nargs=-1)
@click.option(
    "--docker/--no-docker",
    "to_docker",
    default=None,
    help="Also import into Docker as sandgate/<name>:<recipe hash> (default: when "
    "SANDGATE_BACKEND=docker).",
)
def image_build(names: tuple[str, ...], to_docker: bool | None) -> None:
    """Build the named images (default: all recipes) if their recipe changed."""
    settings = Settings()
    if to_docker is None:
        to_docker = settings.backend == "docker"
    store = ImageStore(settings.images_dir, settings.state_dir, mirror=settings.debian_mirror)
    wanted = names or tuple(
        sorted(p.parent.name for p in settings.images_dir.glob("*/recipe.yaml"))
    )
    try:
        for name in wanted:
            store.ensure(name, progress=lambda line: click.echo(line, err=True))
            if to_docker:
                store.ensure_docker(
                    name, _docker_api(settings), progress=lambda line: click.echo(line, err=True)
                )
    except ImageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except DockerException as exc:
        click.echo(f"error: Docker: {exc} (is dockerd running? .ci/docker starts it)", err=True)
        sys.exit(1)


def _docker_api(settings: Settings) -> Any:
    from sandbox.docker import API_VERSION

    if settings.docker_url:
        return docker.APIClient(base_url=settings.docker_url, version=API_VERSION, timeout=600)
    return docker.from_env(version=API_VERSION, timeout=600).api
