"""The `sandgate` command: serve, manage keys, build images (and, as they land, policies, audit)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
import docker
from docker.errors import DockerException
from pydantic import ValidationError

from sandbox.image import ImageError, ImageStore
from sandgate.audit.auditor import Auditor
from sandgate.audit.base import AuditError
from sandgate.audit.cli import audit
from sandgate.audit.dsn import default_dsn, open_store
from sandgate.cluster.cli import cluster
from sandgate.keys import ApiKey, KeyStore, Scope
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


@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


def _key_store() -> KeyStore:
    return KeyStore(Settings().state_dir / "keys.db")


def _audit_key_change(action: str, key: ApiKey) -> None:
    """Record a key's creation or revocation (its id, name, tenant, scopes; never the key)."""
    settings = Settings()
    if settings.audit_dsn == "off":
        return
    event = Auditor.event(
        action,
        key=key,
        request_id=None,
        client="cli",
        verdict="ok",
        details={"scopes": [s.value for s in key.scopes]},
    )
    with open_store(settings.audit_dsn or default_dsn()) as store:
        store.append(event)


@keys.command("create")
@click.option("--name", required=True, help="A name for the key (shown in audit records).")
@click.option("--tenant", default="default", show_default=True, help="Tenant the key acts for.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice([s.value for s in Scope]),
    help="Repeat for several; default: execute and screen.",
)
def keys_create(name: str, tenant: str, scopes: tuple[str, ...]) -> None:
    """Create a key and print it once; only its hash is stored."""
    store = _key_store()
    chosen = tuple(Scope(s) for s in scopes) or (Scope.EXECUTE, Scope.SCREEN)
    secret, record = store.create(name, tenant=tenant, scopes=chosen)
    try:
        _audit_key_change("key.create", record)
    except AuditError as exc:
        store.revoke(record.id)  # an unaudited key must not stay usable
        raise click.ClickException(
            f"the audit log cannot be written ({exc}); key revoked"
        ) from None
    click.echo(secret)
    click.echo(
        f"key {record.id} ({record.name}, tenant {record.tenant}, scopes "
        f"{','.join(record.scopes)}): shown once, store it now",
        err=True,
    )


@keys.command("list")
def keys_list() -> None:
    """List keys (never their secrets)."""
    for key in _key_store().list():
        click.echo(json.dumps(key.model_dump(mode="json")))


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id."""
    record = _key_store().revoke(key_id)
    if record is None:
        raise click.ClickException(f"no live key with id {key_id}")
    _audit_key_change("key.revoke", record)
    click.echo(f"revoked {record.id} ({record.name})")


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
