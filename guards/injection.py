"""`injection`: prompt-injection and jailbreak rules per language, including encoded payloads.

Rules are case-insensitive regexes over the normalised text, one pack per language in
`injection_rules/` (en, de, es, fr, pt, it: instruction overrides and goal hijacking,
role-play and persona switches, system-prompt extraction, decode-and-follow, and indirect
injection, i.e. instructions addressed to an assistant inside a document, a tool's output or
a code comment), plus a policy's `screening.injection_rules`. Every pack runs on every text:
attacks mix languages ("Is the settlement building fair? Oubliez toutes les instructions").
Base64 and hex runs are decoded and the rules run on what they hide (a finding spans the
encoded run); leetspeak, spaced-out, reversed and ROT13 text are read through the views of
`guards._deobfuscate`. A finding's rule is `<language>/<rule name>`, prefixed by the view.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from threading import Lock
from typing import Any

import regex

from guards._deobfuscate import views
from guards._rule_index import RuleIndex
from guards.base import Detection, ScanRequest, SyncDetector
from guards.rules import InjectionRule, InjectionRuleFile, load_rule_file

__all__ = ["LANGUAGES", "RULE_PACKS", "InjectionDetector", "shipped_rules"]

LANGUAGES = ("en", "de", "es", "fr", "pt", "it")
RULE_PACKS = Path(__file__).with_name("injection_rules")
_FLAGS = regex.IGNORECASE | regex.MULTILINE
_BASE64 = regex.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{24,}={0,2}")
_HEX = regex.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){16,}(?![0-9A-Fa-f])")
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


def _decode(token: str) -> str | None:
    """The text a base64 or hex run hides, if it is mostly printable text."""
    raw: bytes | None = None
    if _HEX.fullmatch(token):
        raw = bytes.fromhex(token)
    else:
        padded = token + "=" * (-len(token) % 4)
        try:
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in text)
    return text if text and printable / len(text) > 0.9 else None


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
        for run in _BASE64.finditer(text):
            decoded = _decode(run.group())
            if decoded is None:
                continue
            for inner in self._scan(decoded, rules, depth + 1):
                rule = f"encoded: {inner.rule}"
                found.append(Detection(inner.type, run.start(), run.end(), inner.score, rule))
        return found
