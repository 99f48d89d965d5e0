"""`injection`: prompt-injection and jailbreak rules per language, including encoded payloads.

Rules are case-insensitive regexes over the normalised text, one pack per language in
`injection_rules/` (en, de, es, fr, pt, it: instruction overrides and goal hijacking,
role-play and persona switches, system-prompt extraction, decode-and-follow, and indirect
injection, i.e. instructions addressed to an assistant inside a document, a tool's output or
a code comment; and for nl, pl, hr, cs, sv and tr the overrides, mostly the persona
switches too), plus a policy's `screening.injection_rules`. Every pack runs on every text:
attacks mix languages ("Is the settlement building fair? Oubliez toutes les instructions").
Base64 and hex runs are decoded and the rules run on what they hide (a finding spans the
encoded run); leetspeak, spaced-out, reversed and ROT13 text are read through the views of
`guards._deobfuscate`. A finding's rule is `<language>/<rule name>`, prefixed by the view.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from threading import Lock
from typing import Any

import regex

from guards._deobfuscate import encoded_runs, views
from guards._rule_index import RuleIndex
from guards.base import Detection, ScanRequest, SyncDetector
from guards.rules import InjectionRule, InjectionRuleFile, load_rule_file

__all__ = ["LANGUAGES", "RULE_PACKS", "InjectionDetector", "shipped_rules"]

# Full packs for six languages; the override (and mostly the persona) family for six more.
LANGUAGES = ("en", "de", "es", "fr", "pt", "it", "nl", "pl", "hr", "cs", "sv", "tr")
RULE_PACKS = Path(__file__).with_name("injection_rules")
_FLAGS = regex.IGNORECASE | regex.MULTILINE
_MAX_DEPTH = 2
_CACHE_SIZE = 32

# The rules, and an index that tries each only where one of its first words stands.
Compiled = tuple[tuple[InjectionRule, ...], RuleIndex]


@lru_cache(maxsize=1)
def shipped_rules() -> tuple[InjectionRule, ...]:
    """Every language pack's rules, validated, each named `<language>/<name>`."""
    return tuple(
        rule.model_copy(update={"name": f"{language}/{rule.name}"})
        for language in LANGUAGES
        for rule in load_rule_file(RULE_PACKS / f"{language}.yaml", InjectionRuleFile).rules
    )


def _compile(rules: tuple[InjectionRule, ...]) -> Compiled:
    return rules, RuleIndex([regex.compile(rule.pattern, _FLAGS) for rule in rules])


class InjectionDetector(SyncDetector):
    """Instruction overrides, system-prompt extraction, role-play jailbreaks, encoded payloads."""

    name = "injection"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._compiled: OrderedDict[str, Compiled] = OrderedDict()
        self._lock = Lock()

    def entities(self) -> list[str]:
        """Types of the shipped rules."""
        return sorted({rule.type for rule in shipped_rules()})

    def warm_up(self) -> None:
        """Compile the shipped rules."""
        self._rules(())

    def _rules(self, extra: tuple[InjectionRule, ...]) -> Compiled:
        key = "|".join(rule.model_dump_json() for rule in extra)
        with self._lock:
            if key in self._compiled:
                self._compiled.move_to_end(key)
                return self._compiled[key]
        compiled = _compile(shipped_rules() + extra)
        with self._lock:
            self._compiled[key] = compiled
            while len(self._compiled) > _CACHE_SIZE:
                self._compiled.popitem(last=False)
        return compiled

    def scan(self, request: ScanRequest) -> list[Detection]:
        """Match every rule on the text, then on what its encoded runs decode to."""
        rules = self._rules(tuple(request.config.injection_rules))
        found = self._scan(request.text, rules, depth=0)
        for view in views(request.text):
            for inner in self._scan(view.text, rules, depth=_MAX_DEPTH):
                start, end = view.to_source(inner.start, inner.end)
                rule = f"{view.name}: {inner.rule}"
                found.append(Detection(inner.type, start, end, inner.score, rule))
        wanted = request.stage_config.entities
        return found if wanted is None else [d for d in found if d.type in wanted]

    def _scan(self, text: str, rules: Compiled, depth: int) -> list[Detection]:
        shipped, index = rules
        found = [
            Detection(rule.type, match.start(), match.end(), rule.score, rule.name)
            for position, match in index.matches(text)
            for rule in (shipped[position],)
        ]
        if depth >= _MAX_DEPTH:
            return found
        for start, end, decoded in encoded_runs(text):
            for inner in self._scan(decoded, rules, depth + 1):
                rule = f"encoded: {inner.rule}"
                found.append(Detection(inner.type, start, end, inner.score, rule))
        return found
