"""Readable views of obfuscated text, each with a map back to the text it came from.

An injection can be written so that no rule matches it as sent: in leetspeak ("1gn0r3 4ll
pr3v10u5"), one letter at a time ("i g n o r e"), backwards, or in ROT13. Each view below
undoes one of these; the injection rules and the classifier run on every view that a cheap
check says may be present, and a match is reported on the characters it came from. Base64
and hex payloads are decoded by `encoded_runs` (a finding there spans the whole encoded run).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import regex

__all__ = ["View", "encoded_runs", "views"]

_LEET = str.maketrans("013456789@$!|", "oieasgtbgasil")
# A word with a leet character between two letters ("pr3v10u5"); not hex ("0x0e", "ff00aa").
_LEET_WORD = regex.compile(
    r"(?i)(?<![a-z0-9@$!|])[a-z0-9@$!|]*[a-z][0134578@$!|]+[a-z][a-z0-9@$!|]*(?![a-z0-9@$!|])"
)
_HEX = regex.compile(r"(?i)(?:0x)?[0-9a-f]+")
# Cheap first looks (the standard library's engine), before the exact patterns above.
_MAY_BE_LEET = re.compile(r"[a-z][0134578@$!|][a-z]", re.IGNORECASE)
_MAY_BE_SPACED = re.compile(r"(?<![a-z])[a-z][ .\-_*][a-z][ .\-_*][a-z](?![a-z])", re.IGNORECASE)
_SPACED = regex.compile(r"(?i)(?<![a-z])[a-z](?:[ .\-_*][a-z]){2,}(?![a-z])")
_SPACED_GAP = regex.compile(r"[ .\-_*]")
_BASE64 = regex.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{24,}={0,2}")
_HEX_RUN = regex.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){16,}(?![0-9A-Fa-f])")
# Words that open most injections, written backwards and in ROT13.
_REVERSED = ("erongi", "snoitcurtsni", "tpmorp", "drager", "tegrof", "suoiverp")
_ROT13 = ("vtaber", "vafgehpgvbaf", "cebzcg", "qvfertneq", "sbetrg", "cerivbhf")


@dataclass(frozen=True, slots=True)
class View:
    """A rewritten text and the span of the original that each of its spans came from."""

    name: str
    text: str
    to_source: Callable[[int, int], tuple[int, int]]


def _same(start: int, end: int) -> tuple[int, int]:
    return start, end


def _leet(text: str) -> View | None:
    if not _MAY_BE_LEET.search(text):
        return None
    words = {w for w in _LEET_WORD.findall(text) if not _HEX.fullmatch(w)}
    if len(words) < 2:
        return None
    return View("leetspeak", text.translate(_LEET), _same)


def _spaced(text: str) -> View | None:
    """Letters written one at a time become words again; other text is kept as it is."""
    if not _MAY_BE_SPACED.search(text) or not _SPACED.search(text):
        return None
    parts: list[str] = []
    index: list[int] = []
    at = 0
    for match in _SPACED.finditer(text):
        parts.append(text[at : match.start()])
        index.extend(range(at, match.start()))
        for offset, char in enumerate(match.group()):
            if not _SPACED_GAP.fullmatch(char):
                parts.append(char)
                index.append(match.start() + offset)
        at = match.end()
    parts.append(text[at:])
    index.extend(range(at, len(text)))

    def back(start: int, end: int) -> tuple[int, int]:
        return index[start], index[end - 1] + 1 if end > start else index[start]

    return View("spaced letters", "".join(parts), back)


def _reversed(text: str) -> View | None:
    lowered = text.lower()
    if not any(word in lowered for word in _REVERSED):
        return None
    size = len(text)
    return View("reversed", text[::-1], lambda start, end: (size - end, size - start))


def _rot13(text: str) -> View | None:
    lowered = text.lower()
    if not any(word in lowered for word in _ROT13):
        return None
    return View("rot13", codecs.encode(text, "rot13"), _same)


def views(text: str) -> Iterator[View]:
    """Every deobfuscated view the text may need (usually none)."""
    for make in (_leet, _spaced, _reversed, _rot13):
        view = make(text)
        if view is not None:
            yield view


def _decode(token: str) -> str | None:
    """The text a base64 or hex run hides, if it is mostly printable text."""
    raw: bytes | None = None
    if _HEX_RUN.fullmatch(token):
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


def encoded_runs(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, decoded text) of each base64 or hex run that hides readable text."""
    for run in _BASE64.finditer(text):
        decoded = _decode(run.group())
        if decoded is not None:
            yield run.start(), run.end(), decoded
