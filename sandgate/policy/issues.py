"""Problems found in policy files, each with its file, line, column and field path."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

__all__ = ["PolicyIssue", "PolicySetInvalid", "error_message", "unknown_key_hint"]


@dataclass(frozen=True)
class PolicyIssue:
    """One problem, where it is: `file:line:column: path: message`."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for the API."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class PolicySetInvalid(Exception):
    """The files do not make a valid set; nothing of them may be applied."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        super().__init__("; ".join(str(i) for i in issues[:5]))
        self.issues = issues


def error_message(error: Mapping[str, Any]) -> str:
    """A pydantic error in the words of a policy file: "unknown key", "must be > 0"."""
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op = {
            "greater_than": ">",
            "greater_than_equal": ">=",
            "less_than": "<",
            "less_than_equal": "<=",
        }[kind]
        bound = next(iter(ctx.values()), "?")
        return f"must be {op} {bound:g}" if isinstance(bound, float) else f"must be {op} {bound}"
    text = str(error.get("msg", "invalid"))
    return text.removeprefix("Value error, ")


def unknown_key_hint(loc: tuple[str | int, ...], model: type[BaseModel]) -> str:
    """ " (did you mean 'egress'?)" for a misspelt key at `loc` of `model`, else ""."""
    fields: Any = model.model_fields
    for part in loc[:-1]:
        info = fields.get(part) if isinstance(fields, dict) else None
        annotation = getattr(info, "annotation", None)
        fields = getattr(annotation, "model_fields", None)
        if fields is None:
            return ""
    close = difflib.get_close_matches(str(loc[-1]), list(fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
