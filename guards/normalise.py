"""Normalisation before detection, with an exact map back to the text as sent.

Against evasion, detectors see a folded copy of the text:
- control characters (C0/C1 but tab, CR, LF), zero-width, bidi controls, soft hyphens and
  variation selectors are removed; Unicode tag characters (U+E0020..U+E007E, invisible
  "ASCII smuggling") are turned back into the ASCII they hide;
- NFKC is applied (full-width digits and letters, ligatures, mathematical letters);
- confusable Cyrillic/Greek letters, Unicode dashes and quotes are folded (`_homoglyphs`);
- digit runs split by spaces or dashes are joined when the digits are a Luhn-valid card
  number, and letter-digit runs when they are a mod-97-valid IBAN.

The text is cut into extended grapheme clusters (a base character and what combines with
it, emoji sequences, CRLF) and each cluster is normalised on its own, so every character
of the normalised text maps to exactly one cluster of the original: `to_original` returns
spans that start and end on cluster boundaries, never inside an emoji or an accented
letter, whatever NFKC expands (U+FDFA -> 18 letters) or merges (e + U+0301 -> é).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import regex

from guards._homoglyphs import HOMOGLYPHS

__all__ = ["Normalised", "normalise"]

# Printable ASCII not followed by a non-ASCII character (which might combine with it),
# else one extended grapheme cluster.
_TOKENS = regex.compile(r"(?P<plain>(?:[\t\n\r\x20-\x7e](?![^\x00-\x7f]))+)|\X", regex.DOTALL)
_PLAIN = regex.compile(r"[\t\n\r\x20-\x7e]*")
_INVISIBLE = frozenset(
    [0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x3164, 0xFEFF, 0xFFA0]
    + list(range(0x200B, 0x2010))  # zero-width space/joiners, LRM, RLM
    + list(range(0x202A, 0x202F))  # bidi embeddings and overrides
    + list(range(0x2060, 0x2070))  # word joiner, invisible operators, bidi isolates
    + list(range(0xFE00, 0xFE10))  # variation selectors
    + list(range(0xE0100, 0xE01F0))  # variation selectors supplement
    + [0xE0001, 0xE007F]  # language tag, cancel tag
)
_DIGIT_RUN = regex.compile(r"(?<![\d])\d(?:[ \-]{0,2}\d){11,18}(?!\d)")
_IBAN_RUN = regex.compile(
    r"(?<![A-Za-z0-9])[A-Za-z][ \-]?[A-Za-z][ \-]?\d[ \-]?\d(?:[ \-]?[0-9A-Za-z]){11,30}"
    r"(?![0-9A-Za-z])"
)
_SEPARATORS = frozenset(" -")


@dataclass(frozen=True, slots=True)
class Normalised:
    """A normalised text and, per character, the span of the original it came from."""

    original: str
    text: str
    starts: Sequence[int]
    ends: Sequence[int]

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of `text` to the span of `original` that produced it."""
        if not 0 <= start <= end <= len(self.text):
            raise ValueError(f"span {start}:{end} outside 0:{len(self.text)}")
        if start == end:
            at = self.starts[start] if start < len(self.text) else len(self.original)
            return at, at
        return self.starts[start], self.ends[end - 1]


def normalise(text: str) -> Normalised:
    """Fold `text` for detection, keeping the offset map (see the module docstring)."""
    if _PLAIN.fullmatch(text):
        return _join_numbers(Normalised(text, text, range(len(text)), range(1, len(text) + 1)))
    folded, starts, ends = _fold(text)
    return _join_numbers(Normalised(text, folded, starts, ends))


def _fold(text: str) -> tuple[str, list[int], list[int]]:
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for match in _TOKENS.finditer(text):
        begin, stop = match.span()
        chunk = match.group()
        if match.lastgroup == "plain":
            out = chunk
            starts.extend(range(begin, stop))
            ends.extend(range(begin + 1, stop + 1))
        else:
            out = _fold_cluster(chunk)
            starts.extend([begin] * len(out))
            ends.extend([stop] * len(out))
        parts.append(out)
    return "".join(parts), starts, ends


@lru_cache(maxsize=4096)
def _fold_cluster(cluster: str) -> str:
    kept = []
    for char in cluster:
        code = ord(char)
        if 0xE0020 <= code <= 0xE007E:
            kept.append(chr(code - 0xE0000))
        elif code in _INVISIBLE or (unicodedata.category(char) == "Cc" and char not in "\t\n\r"):
            continue
        else:
            kept.append(char)
    return unicodedata.normalize("NFKC", "".join(kept)).translate(HOMOGLYPHS)


def _join_numbers(norm: Normalised) -> Normalised:
    drop: list[int] = []
    for match in _DIGIT_RUN.finditer(norm.text):
        digits = [c for c in match.group() if c.isdigit()]
        if len(digits) != len(match.group()) and _luhn_ok(digits):
            drop.extend(i for i in range(*match.span()) if norm.text[i] in _SEPARATORS)
    for match in _IBAN_RUN.finditer(norm.text):
        span = _iban_prefix(norm.text, match.start(), match.end())
        if span is not None:
            drop.extend(i for i in range(*span) if norm.text[i] in _SEPARATORS)
    if not drop:
        return norm
    gone = set(drop)
    keep = [i for i in range(len(norm.text)) if i not in gone]
    return Normalised(
        norm.original,
        "".join(norm.text[i] for i in keep),
        [norm.starts[i] for i in keep],
        [norm.ends[i] for i in keep],
    )


def _luhn_ok(digits: Sequence[str]) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _iban_prefix(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The longest separated run from `start` that is a valid IBAN, if any."""
    chunk = text[start:end]
    if not any(c in _SEPARATORS for c in chunk):
        return None
    for stop in range(len(chunk), 14, -1):
        if chunk[stop - 1] in _SEPARATORS:
            continue
        compact = "".join(c for c in chunk[:stop] if c not in _SEPARATORS).upper()
        if 15 <= len(compact) <= 34 and compact[2:4].isdigit() and _mod97_ok(compact):
            return start, start + stop
    return None


def _mod97_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    if not rearranged.isalnum() or not rearranged.isascii():
        return False
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
