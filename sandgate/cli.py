"""The `sandgate` command: serve, manage keys, build images (and, as they land, policies, audit)."""

from __future__ import annotations

import os

import click
from pydantic import ValidationError

from sandgate.audit.cli import audit
from sandgate.cluster.cli import cluster
from sandgate.image_cli import image
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
main.add_command(image)
main.add_command(cluster)


@main.command()
@click.option(
    "--role",
    type=click.Choice(["all", "api", "worker"]),
    help="all: one process does everything (default: SANDGATE_ROLE or all); api: admission, "
    "screening and relay, no sandboxes; worker: runs what the queue (SANDGATE_REDIS_URL) hands it.",
)
@click.option("--host", help="Bind address (default: SANDGATE_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: SANDGATE_PORT or 8000).")
@click.option("--workers", type=int, help="uvicorn workers (default: SANDGATE_WORKERS or 1).")
def serve(role: str | None, host: str | None, port: int | None, workers: int | None) -> None:
    """Start the HTTP service."""
    import uvicorn

    if role:
        os.environ["SANDGATE_ROLE"] = role  # the app factory reads its settings itself
    if workers:
        os.environ["SANDGATE_WORKERS"] = str(workers)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise click.ClickException(str(exc)) from None
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
