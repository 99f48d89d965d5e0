"""`bindings.yaml`: which policy applies to which API key."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sandgate.policy.issues import PolicyIssue, error_message
from sandgate.policy.schema import NAME_PATTERN
from sandgate.policy.yamlsrc import Document

__all__ = ["BINDINGS_FILE", "Bindings", "read_bindings"]

BINDINGS_FILE = "bindings.yaml"


class Bindings(BaseModel):
    """`bindings.yaml`: which policy a key gets. Key name wins over tenant; else `default`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: str = Field("default", pattern=NAME_PATTERN, description="Policy of unbound keys.")
    keys: dict[str, str] = Field(default_factory=dict, description="Key name -> policy.")
    tenants: dict[str, str] = Field(default_factory=dict, description="Tenant -> policy.")


def read_bindings(
    path: Path, doc: Document, names: set[str], issues: list[PolicyIssue]
) -> Bindings:
    """Validate `bindings.yaml` and that each policy it names is in `names`; issues appended."""
    try:
        bindings = Bindings.model_validate(doc.data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            where = doc.locate(loc) or (1, 1)
            issues.append(
                PolicyIssue(str(path), *where, ".".join(map(str, loc)), error_message(error))
            )
        return Bindings()
    targets: list[tuple[tuple[str, ...], str]] = [(("default",), bindings.default)]
    targets += [(("keys", k), v) for k, v in bindings.keys.items()]
    targets += [(("tenants", k), v) for k, v in bindings.tenants.items()]
    for loc, target in targets:
        if target not in names:
            where = doc.locate(loc) or (1, 1)
            issues.append(
                PolicyIssue(
                    str(path),
                    *where,
                    ".".join(loc),
                    f"binds to {target!r}, which is not a loaded policy",
                )
            )
    return bindings
