"""Presidio's `PatternRecognizer`, with a named group `secret` narrowing a match to its value.

A secret is found by what surrounds it (`password = "..."`, `Bearer ...`) but only the
value should be reported and redacted. Presidio reports whole matches, and variable-length
lookbehinds (the other way to leave the context out) cost ~1-2 ms per 10 KB each. So a
pattern may name a group `secret`: the finding is narrowed to it after Presidio's own
matching, validation and scoring. A pattern without the group behaves as in Presidio.
"""

from __future__ import annotations

from typing import Any

import regex
from presidio_analyzer import PatternRecognizer

__all__ = ["GroupPatternRecognizer"]

_GROUP = "secret"


class GroupPatternRecognizer(PatternRecognizer):
    """A `PatternRecognizer` whose patterns may narrow their match with `(?P<secret>...)`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        flags = self.global_regex_flags or 0
        patterns: list[Any] = list(getattr(self, "patterns", []))
        self._narrowing = {
            p.regex: compiled
            for p in patterns
            if _GROUP in (compiled := regex.compile(p.regex, flags)).groupindex
        }

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: Any = None,
        regex_flags: int | None = None,
    ) -> list[Any]:
        """Presidio's matches, each narrowed to its `secret` group when the pattern has one."""
        results: list[Any] = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for result in results:
            explanation = result.analysis_explanation
            compiled = self._narrowing.get(getattr(explanation, "pattern", None))
            if compiled is None:
                continue
            match = compiled.match(text, result.start)
            if match is not None and match.end() == result.end and match.start(_GROUP) >= 0:
                result.start, result.end = match.span(_GROUP)
        return results
