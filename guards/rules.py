"""Rule shapes a policy or a shipped YAML file can hold: secret recognizers and injection rules.

Secret recognizers use Presidio's YAML recognizer shape (`name`, `supported_entity`,
`patterns: [{name, regex, score}]`, `context`, `deny_list`), so rules written for Presidio
carry over. Patterns are compiled with the `regex` module (Presidio's), case-sensitively
unless they say `(?i)`, and must compile when the policy loads, not at the first request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import regex
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "InjectionRule",
    "InjectionRuleFile",
    "PatternSpec",
    "RecognizerFile",
    "RecognizerSpec",
    "load_rule_file",
]

_ENTITY = r"^[A-Z][A-Z0-9_]{1,63}$"
_M = TypeVar("_M", bound=BaseModel)


def _compiles(pattern: str) -> str:
    try:
        regex.compile(pattern)
    except regex.error as exc:
        raise ValueError(f"regex does not compile: {exc}") from None
    return pattern


class PatternSpec(BaseModel):
    """One regular expression of a recognizer (Presidio `Pattern`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Pattern name, reported as the finding's rule.")
    regex: str = Field(min_length=1, description="Regular expression (`regex` module syntax).")
    score: float = Field(ge=0, le=1, description="Score of a match before context boosts.")

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str) -> str:
        return _compiles(value)


class RecognizerSpec(BaseModel):
    """A pattern recognizer in Presidio's YAML shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Recognizer name.")
    supported_entity: str = Field(pattern=_ENTITY, description="Finding type it reports.")
    supported_language: str = Field("en", description="Language code; only `en` is screened.")
    patterns: list[PatternSpec] = Field(default_factory=list, description="Regexes to match.")
    context: list[str] = Field(
        default_factory=list, description="Words near a match that raise its score."
    )
    deny_list: list[str] = Field(
        default_factory=list, description="Literal values always reported (score 1)."
    )

    @model_validator(mode="after")
    def _has_something(self) -> RecognizerSpec:
        if not self.patterns and not self.deny_list:
            raise ValueError("a recognizer needs `patterns` or a `deny_list`")
        return self


class RecognizerFile(BaseModel):
    """A YAML file of recognizers (`recognizers:` at the top, as Presidio writes it)."""

    model_config = ConfigDict(extra="forbid")

    recognizers: list[RecognizerSpec]


class InjectionRule(BaseModel):
    """A prompt-injection heuristic: a case-insensitive regex over the normalised text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Rule name, reported as the finding's rule.")
    pattern: str = Field(min_length=1, description="Regex (`regex` syntax), matched with (?i).")
    score: float = Field(0.9, ge=0, le=1, description="Score of a match.")
    type: str = Field(
        "PROMPT_INJECTION", pattern=_ENTITY, description="Finding type, e.g. `JAILBREAK`."
    )

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str) -> str:
        return _compiles(value)


class InjectionRuleFile(BaseModel):
    """A YAML file of injection rules (`rules:` at the top)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[InjectionRule]


def load_rule_file(path: Path, model: type[_M]) -> _M:
    """Parse a shipped YAML rule file with `yaml.safe_load` and validate it as `model`."""
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    return model.model_validate(data)
