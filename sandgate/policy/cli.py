"""`sandgate policy ...`: check files before they ship, and write the JSON Schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from sandgate.policy.bindings import Bindings
from sandgate.policy.issues import PolicySetInvalid
from sandgate.policy.loader import check_files, load_policy_set
from sandgate.policy.schema import Policy

__all__ = ["policy", "schema_text"]


def schema_text(model: type[Policy] | type[Bindings] = Policy) -> str:
    """The JSON Schema of a policy file (or of bindings.yaml), as written to policies/."""
    return json.dumps(model.model_json_schema(), indent=2, sort_keys=True) + "\n"


@click.group()
def policy() -> None:
    """Validate policies and generate their JSON Schema."""


@policy.command("check")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def check(paths: tuple[Path, ...]) -> None:
    """Check policy files or directories; prints file:line:column: path: message per problem."""
    targets = paths or (Path("policies"),)
    issues = []
    for target in targets:
        if target.is_dir():
            try:
                loaded = load_policy_set(target)
                for resolved in loaded.policies.values():
                    click.echo(f"ok {resolved.source} (sha256 {resolved.hash[:12]})")
            except PolicySetInvalid as exc:
                issues += exc.issues
        else:
            found = check_files([target])
            issues += found
            if not found:
                click.echo(f"ok {target}")
    for issue in issues:
        click.echo(str(issue), err=True)
    if issues:
        click.echo(f"{len(issues)} problem(s)", err=True)
        sys.exit(1)


@policy.command("schema")
@click.option(
    "--write",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write schema.json and bindings.schema.json into this directory.",
)
def schema(directory: Path | None) -> None:
    """Print (or write) the JSON Schema editors use to validate policies as you type."""
    if directory is None:
        click.echo(schema_text(), nl=False)
        return
    (directory / "schema.json").write_text(schema_text(Policy))
    (directory / "bindings.schema.json").write_text(schema_text(Bindings))
    click.echo(f"wrote {directory / 'schema.json'} and {directory / 'bindings.schema.json'}")
