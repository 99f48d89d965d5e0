"""The enumerations every other module speaks in: stages, actions and redaction operators.

They import nothing of `guards`, so the policy model (`guards.config`) and the detector
contract (`guards.base`) can both use them without importing each other.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Action", "Operator", "Stage"]


class Stage(StrEnum):
    """Where in an agent's path a text is screened."""

    INPUT = "input"
    OUTPUT = "output"
    CODE = "code"


class Action(StrEnum):
    """What to do about a finding, and the verdict of a whole text."""

    ALLOW = "allow"
    REDACT = "redact"
    BLOCK = "block"

    @property
    def rank(self) -> int:
        """Strength of the action: block beats redact beats allow."""
        return _RANK[self]


_RANK = {Action.ALLOW: 0, Action.REDACT: 1, Action.BLOCK: 2}


class Operator(StrEnum):
    """How a redacted finding is replaced."""

    REPLACE = "replace"
    MASK = "mask"
    HASH = "hash"
