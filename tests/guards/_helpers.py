"""Helpers shared by the guards tests."""

from __future__ import annotations

from guards import ScreenResult

__all__ = ["spans"]


def spans(result: ScreenResult, text: str) -> set[tuple[str, str]]:
    """(type, matched text in the text as sent) of every finding."""
    return {(f.type, text[f.start : f.end]) for f in result.findings}
