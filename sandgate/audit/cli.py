"""`sandgate audit ...`: verify, export, checkpoint and prune the audit log from a shell.

The store comes from `--db` (default: SANDGATE_AUDIT_DSN, else SANDGATE_STATE_DIR/audit.db);
the checkpoint key from SANDGATE_AUDIT_HMAC_KEY or `--hmac-key-file` (never a command-line
value: it would show in `ps`). Exit codes: 0 fine, 1 the log does not verify (or another
audit error), 2 bad usage, 3 the database is unavailable.
"""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import click
import structlog
from pydantic import ValidationError

from sandgate.audit.base import (
    AuditError,
    AuditStore,
    AuditUnavailable,
    Checkpoint,
    RecordFilter,
)
from sandgate.audit.chain import canonical
from sandgate.audit.dsn import HMAC_KEY_ENV, default_dsn, hmac_key_from_env, open_store
from sandgate.audit.export import FORMATS, Format, export, verify_export
from sandgate.logs import configure_logging

__all__ = ["audit"]


class _IsoTime(click.ParamType[datetime, "str | datetime"]):
    """An ISO-8601 date or time; without a zone it is UTC."""

    name = "ISO-TIME"

    def convert(
        self, value: str | datetime, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not an ISO-8601 time (e.g. 2024-05-01T12:00:00Z)", param, ctx)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


ISO_TIME = _IsoTime()


class _Unavailable(click.ClickException):
    exit_code = 3


@contextmanager
def _store(dsn: str) -> Iterator[AuditStore]:
    """The store, with audit errors turned into clean CLI failures."""
    try:
        with open_store(dsn) as store:
            yield store
    except AuditUnavailable as exc:
        raise _Unavailable(str(exc)) from exc
    except AuditError as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def _utf8(name: Literal["stdin", "stdout"]) -> Iterator[io.TextIOWrapper]:
    """Standard input or output as UTF-8 text whatever the locale (exports are UTF-8)."""
    raw = sys.stdout.buffer if name == "stdout" else sys.stdin.buffer
    stream = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    try:
        yield stream
    finally:
        if name == "stdout":
            stream.flush()
        stream.detach()  # leave the process's own stream open


def _key(key_file: Path | None) -> bytes | None:
    if key_file is not None:
        return key_file.read_bytes().strip()
    return hmac_key_from_env()


db_option = click.option(
    "--db",
    "dsn",
    default=default_dsn,
    show_default="$SANDGATE_AUDIT_DSN, else sqlite under $SANDGATE_STATE_DIR",
    help="The audit store: sqlite:///path, a path, or postgresql://...",
)
key_option = click.option(
    "--hmac-key-file",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"File holding the checkpoint key (default: ${HMAC_KEY_ENV}).",
)


@click.group("audit")
def audit() -> None:
    """Verify, export, checkpoint and prune the tamper-evident audit log."""
    if not structlog.is_configured():
        # Logs go to stderr as JSON: stdout may be carrying an export.
        configure_logging("info")


@audit.command()
@db_option
@key_option
@click.option(
    "--file",
    "slice_file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help="Verify an exported slice (jsonl, csv or ocsf) instead of the database.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Format of --file.")
@click.option(
    "--filtered",
    is_flag=True,
    help="The slice was filtered by key, tenant, action or verdict: gaps are expected.",
)
@click.option(
    "--witness",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding a checkpoint kept earlier (`audit checkpoint` output): the log must "
    "still hold the record it signs.",
)
def verify(
    dsn: str,
    key_file: Path | None,
    slice_file: Path | None,
    fmt: Format | None,
    filtered: bool,
    witness: Path | None,
) -> None:
    """Walk the chain; print 'all N records hold' or name the first record that does not."""
    key = _key(key_file)
    if key is None:
        click.echo(f"warning: {HMAC_KEY_ENV} not set: checkpoint HMACs are not checked", err=True)
    if slice_file is not None:
        fmt = fmt or _format_of(slice_file)
        if str(slice_file) == "-":
            with _utf8("stdin") as lines:
                report = verify_export(lines, fmt, hmac_key=key, filtered=filtered)
        else:
            with slice_file.open(encoding="utf-8", newline="") as lines:
                report = verify_export(lines, fmt, hmac_key=key, filtered=filtered)
    else:
        kept = _witness(witness) if witness is not None else None
        with _store(dsn) as store:
            report = store.verify(key, witness=kept)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


def _witness(path: Path) -> Checkpoint:
    """The last checkpoint line in `path` (as `audit checkpoint` or a jsonl export write it)."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        return Checkpoint.model_validate(json.loads(lines[-1])["checkpoint"])
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise click.BadParameter(
            "not a checkpoint line (`audit checkpoint` prints one)", param_hint="--witness"
        ) from exc


def _format_of(path: Path) -> Format:
    suffix = path.suffix.lstrip(".").lower()
    if suffix == "csv":
        return "csv"
    return "ocsf" if "ocsf" in path.name.lower() else "jsonl"


@audit.command("export")
@db_option
@key_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True)
@click.option("-o", "--output", default="-", help="File to write (default: standard output).")
@click.option("--since", type=ISO_TIME, help="Records at or after this time.")
@click.option("--until", type=ISO_TIME, help="Records before this time.")
@click.option("--key", "key_id", help="Only this key id's records.")
@click.option("--tenant", help="Only this tenant's records.")
@click.option("--action", help="Only this action (execute, screen, auth.denied...).")
@click.option("--verdict", help="Only this verdict (allow, redact, block...).")
@click.option("--no-anchor", is_flag=True, help="Do not widen a slice back to its checkpoint.")
@click.option(
    "--checkpoint", is_flag=True, help="Sign the head first, so the whole slice is vouched for."
)
def export_command(
    dsn: str,
    key_file: Path | None,
    fmt: Format,
    output: str,
    no_anchor: bool,
    checkpoint: bool,
    **filters: Any,
) -> None:
    """Stream records to a file or stdout as jsonl, csv or ocsf, in constant memory."""
    try:
        where = RecordFilter(**filters)
    except ValidationError as exc:
        wrong = ", ".join(f"--{e['loc'][0]}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(wrong) from None
    key = _key(key_file)
    if checkpoint and key is None:
        raise click.UsageError(f"--checkpoint signs with the HMAC key: set {HMAC_KEY_ENV}")
    with _store(dsn) as store:
        if checkpoint and key is not None and store.head().seq:
            store.checkpoint(key, reason="manual")
        if output == "-":
            with _utf8("stdout") as out:
                count = export(store, out, fmt, where, anchor=not no_anchor)
        else:
            count = _export_to_file(store, Path(output), fmt, where, not no_anchor)
    click.echo(f"exported {count} records", err=True)


def _export_to_file(
    store: AuditStore, path: Path, fmt: Format, where: RecordFilter, anchor: bool
) -> int:
    """Write next to `path` and rename at the end: a file named `path` is always complete."""
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            if sys.stderr.isatty():
                total = store.count(where)
                with click.progressbar(length=total, label="exporting", file=sys.stderr) as bar:
                    count = export(store, out, fmt, where, anchor=anchor, progress=bar.update)
            else:
                count = export(store, out, fmt, where, anchor=anchor)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return count


@audit.command("checkpoint")
@db_option
@key_option
def checkpoint_command(dsn: str, key_file: Path | None) -> None:
    """Sign the head now and print the checkpoint (an auditor keeps it to detect truncation)."""
    key = _key(key_file)
    if key is None:
        raise click.UsageError(f"a checkpoint is signed with the HMAC key: set {HMAC_KEY_ENV}")
    with _store(dsn) as store:
        cp = store.checkpoint(key, reason="manual")
    click.echo(canonical({"checkpoint": cp.model_dump()}))


def _longest_retention(directory: Path) -> int:
    from sandgate.policy.issues import PolicySetInvalid
    from sandgate.policy.loader import load_policy_set

    try:
        loaded = load_policy_set(directory)
    except PolicySetInvalid as exc:
        raise click.ClickException(f"the policies do not load: {exc}") from None
    return max(p.policy.audit.retention_days for p in loaded.policies.values())


@audit.command()
@db_option
@key_option
@click.option("--before", type=ISO_TIME, help="Delete records older than this time.")
@click.option("--days", type=click.IntRange(min=1), help="Delete records older than N days.")
@click.option(
    "--policies",
    "policy_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Delete records older than the longest `audit.retention_days` of these policies.",
)
def prune(
    dsn: str,
    key_file: Path | None,
    before: datetime | None,
    days: int | None,
    policy_dir: Path | None,
) -> None:
    """Delete old records after a signed checkpoint, so the rest still verifies.

    With --policies, the cut keeps every record for as long as the longest retention any policy
    asks for (the chain is cut at one point in time, so no policy loses records early)."""
    if sum(x is not None for x in (before, days, policy_dir)) != 1:
        raise click.UsageError("give exactly one of --before, --days or --policies")
    if policy_dir is not None:
        days = _longest_retention(policy_dir)
        click.echo(f"retention: {days} days (the longest of the policies in {policy_dir})")
    now = datetime.now(UTC)
    cutoff = before if before is not None else now - timedelta(days=days or 0)
    if cutoff > now:
        raise click.UsageError("--before is in the future: that would delete the whole log")
    key = _key(key_file)
    if key is None:
        raise click.UsageError(f"prune writes a signed checkpoint first: set {HMAC_KEY_ENV}")
    with _store(dsn) as store:
        result = store.prune(cutoff, key)
    if result.checkpoint is None:
        click.echo(f"nothing older than {cutoff.isoformat()}")
    else:
        click.echo(
            f"pruned {result.deleted} records; the checkpoint at seq {result.checkpoint.seq} "
            "anchors the rest"
        )
