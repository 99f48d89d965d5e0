"""`sandgate cluster up|down`: the local multi-node deployment (see `sandgate.cluster.local`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from sandgate.cluster.local import ClusterError, LocalCluster
from sandgate.settings import Settings

__all__ = ["cluster"]


@click.group()
def cluster() -> None:
    """Redis, PostgreSQL, API nodes and workers on this machine's loopback addresses."""


@cluster.command("up")
@click.option("--api", "api", type=click.IntRange(1, 50), default=1, show_default=True)
@click.option("--workers", type=click.IntRange(1, 50), default=1, show_default=True)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Where the engines' data, the nodes' state directories and their logs go.",
)
@click.option("--timeout", type=float, default=180, show_default=True, help="Seconds to be ready.")
def up(api: int, workers: int, state_dir: Path, timeout: float) -> None:
    """Start it all; print `{"api": [...], "workers": [...]}` once every node is ready."""
    images = Settings().state_dir / "images"
    local = LocalCluster(state_dir, images=images)
    try:
        ready = local.up(api, workers, timeout=timeout)
    except ClusterError as exc:
        local.down()
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(ready))


@cluster.command("down")
@click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path, exists=True), required=True
)
def down(state_dir: Path) -> None:
    """Stop the nodes (letting running executions finish), then Redis and PostgreSQL."""
    LocalCluster(state_dir).down()
    click.echo(f"stopped the cluster in {state_dir} (its data stays there)", err=True)
