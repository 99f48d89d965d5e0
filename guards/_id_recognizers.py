"""Presidio recognizers for identifiers told by the words around them, and IPs glued to words.

Presidio's US passport and bank number patterns are any 9 or 8-17 digits at 0.05: even a
context word only lifts them to 0.4, under every threshold, so they are never reported.
These put the context word in the pattern itself ("passport no. C01X00T47", "account
number: 0012 3456 78", "routing 021000021") and report only the value (the `secret` group
of `GroupPatternRecognizer`), in English, German, French, Spanish, Portuguese and Italian.
Routing numbers must pass the ABA checksum. IPv4 and IPv6 addresses are found even glued
to a word ("host10.0.0.1", "addr=fe80::1%eth0") and validated with `ipaddress`; this
replaces Presidio's IP recognizer, whose `\\b` needs a word boundary.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from presidio_analyzer import Pattern

import guards._env  # noqa: F401
from guards._group_recognizer import GroupPatternRecognizer

__all__ = ["id_recognizers"]

_NUMBER_WORD = r"(?:\s+(?:no\.?|nr\.?|n°|num(?:ber|ero|éro|ero)?|#|nummer|número|numéro))?"
_SEP = r"\s*[:#=]?\s*"
_PASSPORT = (
    r"(?:passport|passeport|reisepass|pasaporte|passaporte|passaporto)" + _NUMBER_WORD + _SEP
    + r"(?P<secret>(?=(?:[A-Z]*\d){2})(?:[A-Z]{1,2}[0-9]{6,8}|[0-9]{9}|[A-Z0-9]{9}))\b"
)  # fmt: skip
_ACCOUNT = (
    r"(?:(?:bank\s+)?account|acct|a/c|konto(?:nummer)?|compte(?:\s+bancaire)?|cuenta|conta|"
    r"conto(?:\s+corrente)?)" + _NUMBER_WORD + _SEP + r"(?P<secret>\d(?:[ \-]?\d){5,16})(?![\d\-])"
)
_ROUTING = r"(?:routing|aba|rtn|transit)" + _NUMBER_WORD + _SEP + r"(?P<secret>\d{9})(?!\d)"
_SORT_CODE = r"sort\s*code" + _SEP + r"(?P<secret>\d{2}-\d{2}-\d{2})(?![\d\-])"
_IPV4 = r"(?<![\d.]|\bv)(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)"
_IPV6 = (
    r"(?<![0-9A-Fa-f])(?<![0-9A-Fa-f]:)(?<!::)(?:[0-9A-Fa-f]{1,4}:|:(?=:))"
    r"(?:[0-9A-Fa-f]{0,4}:){1,6}[0-9A-Fa-f]{0,4}(?:%\w+)?(?![0-9A-Fa-f:])"
)


class _RoutingRecognizer(GroupPatternRecognizer):
    """Routing numbers: the value must pass the ABA checksum."""

    def validate_result(self, pattern_text: str) -> bool | None:
        """3-7-1 weighted digit sum divisible by 10."""
        digits = [int(c) for c in pattern_text if c.isdigit()][-9:]
        weights = (3, 7, 1) * 3
        return (
            len(digits) == 9 and sum(d * w for d, w in zip(digits, weights, strict=True)) % 10 == 0
        )


class _IpRecognizer(GroupPatternRecognizer):
    """IP addresses wherever they stand, valid ones only."""

    def validate_result(self, pattern_text: str) -> bool | None:
        """Whether `ipaddress` accepts it (scope ids allowed); an IPv6 address needs two
        groups and three of them or a long one ("fe80::1"), not C++'s "std::begin"."""
        address = pattern_text.split("%", 1)[0]
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return False
        groups = [g for g in address.split(":") if g]
        return ":" not in address or (
            len(groups) >= 3 or (len(groups) == 2 and max(map(len, groups)) >= 3)
        )


# (class, entity, name, patterns) of each recognizer.
_TABLE: list[tuple[type[GroupPatternRecognizer], str, str, list[tuple[str, str, float]]]] = [
    (GroupPatternRecognizer, "PASSPORT", "Passport", [("after its name", _PASSPORT, 0.85)]),
    (GroupPatternRecognizer, "BANK_ACCOUNT", "BankAccount", [("after its name", _ACCOUNT, 0.8)]),
    (_RoutingRecognizer, "ABA_ROUTING_NUMBER", "Routing", [("after its name", _ROUTING, 0.9)]),
    (GroupPatternRecognizer, "UK_SORT_CODE", "SortCode", [("after its name", _SORT_CODE, 0.85)]),
    (_IpRecognizer, "IP_ADDRESS", "Ip", [("IPv4", _IPV4, 0.6), ("IPv6", _IPV6, 0.6)]),
]


def id_recognizers() -> list[Any]:
    """The recognizers, to add to the `pii` analyzer's registry."""
    return [
        cls(
            supported_entity=entity,
            name=f"Sandgate{name}Recognizer",
            patterns=[Pattern(label, rx, score) for label, rx, score in patterns],
        )
        for cls, entity, name, patterns in _TABLE
    ]
