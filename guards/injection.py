"""`injection`: prompt-injection and jailbreak heuristics, including encoded payloads.

Rules (`injection.yaml` plus a policy's `screening.injection_rules`) are case-insensitive
regexes over the normalised text. Base64 and hex runs are decoded, and the rules run on
what they hide: a finding then spans the encoded run in the text as sent.
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

from guards.base import Detection, ScanRequest, SyncDetector
from guards.rules import InjectionRule, InjectionRuleFile, load_rule_file

__all__ = ["SHIPPED_INJECTION_RULES", "InjectionDetector", "shipped_rules"]

SHIPPED_INJECTION_RULES = Path(__file__).with_name("injection.yaml")
_FLAGS = regex.IGNORECASE | regex.MULTILINE
_BASE64 = regex.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{24,}={0,2}")
_HEX = regex.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){16,}(?![0-9A-Fa-f])")
_MAX_DEPTH = 2
_CACHE_SIZE = 32

Compiled = tuple[tuple[InjectionRule, Any], ...]


@lru_cache(maxsize=1)
def shipped_rules() -> tuple[InjectionRule, ...]:
    """The rules of `injection.yaml`, validated."""
    return tuple(load_rule_file(SHIPPED_INJECTION_RULES, InjectionRuleFile).rules)


def _compile(rules: tuple[InjectionRule, ...]) -> Compiled:
    return tuple((rule, regex.compile(rule.pattern, _FLAGS)) for rule in rules)


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
        wanted = request.stage_config.entities
        if wanted is not None:
            rules = tuple((rule, rx) for rule, rx in rules if rule.type in wanted)
        if not rules:
            return []
        return self._scan(request.text, rules, depth=0)

    def _scan(self, text: str, rules: Compiled, depth: int) -> list[Detection]:
        found = [
            Detection(rule.type, match.start(), match.end(), rule.score, rule.name)
            for rule, rx in rules
            for match in rx.finditer(text)
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
