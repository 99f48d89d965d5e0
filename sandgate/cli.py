"""The `sandgate` command: serve, manage keys, build images (and, as they land, policies, audit)."""

from __future__ import annotations

import json

import click

from sandgate.audit.auditor import Auditor
from sandgate.audit.base import AuditError
from sandgate.audit.cli import audit
from sandgate.audit.dsn import default_dsn, open_store
from sandgate.image_cli import image
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
main.add_command(image)


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
