"""`sandgate keys`: create, list, rotate and revoke API keys; every change is audited."""

from __future__ import annotations

import json
import time

import click

from sandgate.audit.auditor import Auditor
from sandgate.audit.base import AuditError
from sandgate.audit.dsn import default_dsn, open_store
from sandgate.errors import StoreUnavailable
from sandgate.keys.base import ApiKey, KeyStore, Scope
from sandgate.keys.expiry import expires_at, grace_until, when
from sandgate.policy.issues import PolicySetInvalid
from sandgate.policy.loader import PolicySet, load_policy_set
from sandgate.settings import Settings
from sandgate.stores import open_keys

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """Create, list, rotate and revoke API keys."""


def _key_store() -> KeyStore:
    """The key store every node of this deployment reads (see `sandgate.stores`)."""
    try:
        return open_keys(Settings())
    except StoreUnavailable as exc:
        raise click.ClickException(f"the key store cannot be reached: {exc.message}") from None


def _policies() -> PolicySet:
    """The policies in force: a key's lifetime and grace come from the one it is bound to."""
    directory = Settings().policy_dir
    try:
        return load_policy_set(directory)
    except PolicySetInvalid:
        raise click.ClickException(
            f"the policies in {directory} are invalid (`sandgate policy check {directory}`): "
            "a key's expiry comes from its policy"
        ) from None


def _audit_key_change(action: str, key: ApiKey, **details: object) -> None:
    """Record a key's creation, rotation or revocation (id, name, tenant, scopes; never the
    key)."""
    settings = Settings()
    if settings.audit_dsn == "off":
        return
    event = Auditor.event(
        action,
        key=key,
        request_id=None,
        client="cli",
        verdict="ok",
        details={"scopes": [s.value for s in key.scopes], **details},
    )
    with open_store(settings.audit_dsn or default_dsn()) as store:
        store.append(event)


def _expiry_days(value: float | None) -> float | None:
    return None if value is None else time.time() + value * 86_400


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
@click.option(
    "--expires-days",
    type=click.FloatRange(min=0, min_open=True),
    help="Lifetime in days (default: the bound policy's keys.expiry_days).",
)
def keys_create(
    name: str, tenant: str, scopes: tuple[str, ...], expires_days: float | None
) -> None:
    """Create a key and print it once; only its hash is stored."""
    expiry = _expiry_days(expires_days) or expires_at(_policies(), name, tenant, time.time())
    store = _key_store()
    chosen = tuple(Scope(s) for s in scopes) or (Scope.EXECUTE, Scope.SCREEN)
    secret, record = store.create(name, tenant=tenant, scopes=chosen, expires_at=expiry)
    try:
        _audit_key_change("key.create", record, expires_at=record.expires_at)
    except AuditError as exc:
        store.revoke(record.id)  # an unaudited key must not stay usable
        raise click.ClickException(
            f"the audit log cannot be written ({exc}); key revoked"
        ) from None
    click.echo(secret)
    click.echo(
        f"key {record.id} ({record.name}, tenant {record.tenant}, scopes "
        f"{','.join(record.scopes)}, expires {when(expiry)}): shown once, store it now",
        err=True,
    )


@keys.command("list")
def keys_list() -> None:
    """List keys (never their secrets), with expiry and last use."""
    for key in _key_store().list():
        click.echo(json.dumps(key.model_dump(mode="json")))


@keys.command("rotate")
@click.argument("key_id")
@click.option(
    "--grace-hours",
    type=click.FloatRange(min=0),
    help="How long the old key stays valid (default: the policy's keys.rotation_grace_hours).",
)
def keys_rotate(key_id: str, grace_hours: float | None) -> None:
    """Issue a successor of a key and print it once; the old key stays valid for the grace
    period, then expires."""
    store = _key_store()
    old = store.get(key_id)
    if old is None or old.revoked_at is not None:
        raise click.ClickException(f"no live key with id {key_id}")
    policies, now = _policies(), time.time()
    rotated = store.rotate(
        key_id,
        expires_at=expires_at(policies, old.name, old.tenant, now),
        grace_until=grace_until(policies, old, now, grace_hours),
    )
    if rotated is None:
        raise click.ClickException(f"no live key with id {key_id}")
    secret, new, old = rotated
    try:
        _audit_key_change("key.rotate", new, rotated_from=old.id, old_expires_at=old.expires_at)
    except AuditError as exc:
        store.revoke(new.id)
        raise click.ClickException(
            f"the audit log cannot be written ({exc}); successor revoked, old key unchanged "
            "until its grace ends"
        ) from None
    click.echo(secret)
    assert old.expires_at is not None and new.expires_at is not None
    click.echo(
        f"key {new.id} succeeds {old.id} ({new.name}, tenant {new.tenant}), expires "
        f"{when(new.expires_at)}; {old.id} stays valid until {when(old.expires_at)}",
        err=True,
    )


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by id, at once."""
    record = _key_store().revoke(key_id)
    if record is None:
        raise click.ClickException(f"no live key with id {key_id}")
    _audit_key_change("key.revoke", record)
    click.echo(f"revoked {record.id} ({record.name})")
