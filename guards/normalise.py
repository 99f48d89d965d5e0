"""Normalisation before detection, with an exact map back to the text as sent.

Against evasion, detectors see a folded copy of the text:
- control characters (C0/C1 but tab, CR, LF), zero-width, bidi controls, soft hyphens and
  variation selectors are removed; Unicode tag characters (U+E0020..U+E007E, invisible
  "ASCII smuggling") are turned back into the ASCII they hide;
- NFKC is applied (full-width digits and letters, ligatures, mathematical letters);
- confusable Cyrillic/Greek letters, Unicode dashes and quotes are folded (`_homoglyphs`);
- digit runs split by spaces or dashes are joined when they start as card numbers do, are
  grouped as card numbers are written and the digits pass Luhn; letter-digit runs when
  they are a mod-97-valid IBAN of its country's layout, with country code and check digits
  together ("GB82 WEST ...").

No step may destroy a match the raw text had (a property test holds it): a removed
character becomes a line break unless it stood inside a plain word ("bt\x004111..." must
not become "bt4111..."; a zero-width space inside a card number is not undone either), and
a word before a number is never taken as an IBAN's country code ("Number is 4916 ..." once
became "is4916..." when "IS4916..." passed mod 97).

The text is cut into extended grapheme clusters (a base character and what combines with
it, emoji sequences, CRLF) and each cluster is normalised on its own, so every character
of the normalised text maps to exactly one cluster of the original: `to_original` returns
spans that start and end on cluster boundaries, never inside an emoji or an accented
letter, whatever NFKC expands (U+FDFA -> 18 letters) or merges (e + U+0301 -> é).
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_left, bisect_right
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
_DIGIT_RUN = regex.compile(
    r"(?<![\d.,])(?<!\d[ \-])(?=4|5\d|2[2-7]|3\d|6|1800|2131)\d(?:[ \-]{0,2}\d){11,18}(?!\d|[.,]\d)"
)
# How card numbers are grouped when written: 4-4-4-4(-1..3), Amex 4-6-5, Diners 4-6-4;
# or one digit at a time (an evasion). Anything else is several numbers, not one card.
_CARD_GROUPS = regex.compile(
    r"\d{4}(?:[ \-]{1,2}\d{4}){2,3}(?:[ \-]{1,2}\d{1,4})?"
    r"|\d{4}[ \-]{1,2}\d{6}[ \-]{1,2}\d{4,5}"
    r"|\d(?:[ \-]{1,2}\d)+"
)
_IBAN_RUN = regex.compile(
    r"(?<![A-Za-z0-9])(?:[A-Za-z]{2}\d\d(?:[ \-]?[0-9A-Za-z]){11,30}"
    r"|[A-Za-z](?:[ \-][0-9A-Za-z]){14,33})(?![0-9A-Za-z])"  # or one character at a time
)
_SEPARATORS = frozenset(" -")
_GROUP = regex.compile(r"[0-9A-Za-z]+")
_JOINING = regex.compile(r"[\d \-.,:/()+@]")
_SHORT_TAIL = regex.compile(r"\d{4}[ \-]{1,2}\d{1,3}$")
_MORE_DIGITS = regex.compile(r"[ \-]\d|\d")
_NUMBERISH = regex.compile(r"[^\W\d_]{0,2}\d")


@dataclass(frozen=True, slots=True)
class Normalised:
    """A normalised text and, per character, the span of the original it came from."""

    original: str
    text: str
    starts: Sequence[int]
    ends: Sequence[int]
    # Whether folding made a separator, a digit or a deletion out of something else: only
    # then can a pattern match across what the raw text kept apart (see `guards.pii`).
    may_join: bool = False

    def from_original(self, start: int, end: int) -> tuple[int, int] | None:
        """The span of `text` made from exactly the original span, or None if none was."""
        first = bisect_left(self.starts, start)
        last = bisect_right(self.ends, end)
        return (first, last) if first < last else None

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
    folded, starts, ends, may_join = _fold(text)
    return _join_numbers(Normalised(text, folded, starts, ends, may_join))


def _fold(text: str) -> tuple[str, list[int], list[int], bool]:
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    last = ""
    may_join = False
    for match in _TOKENS.finditer(text):
        begin, stop = match.span()
        chunk = match.group()
        if match.lastgroup == "plain":
            out = chunk
            starts.extend(range(begin, stop))
            ends.extend(range(begin + 1, stop + 1))
        else:
            out = _fold_cluster(chunk)
            if not out and last and _would_glue(last, text, begin, stop):
                out = "\n"  # a boundary no number pattern continues across
            elif out != chunk and (not out or _JOINING.search(out)):
                may_join = True
            starts.extend([begin] * len(out))
            ends.extend([stop] * len(out))
        parts.append(out)
        last = out[-1:] or last
    return "".join(parts), starts, ends, may_join


def _would_glue(before: str, text: str, begin: int, at: int) -> bool:
    """Whether removing `text[begin:at]` could join two things that were apart.

    Only between two letters of a plain word ("ign\u200bore") is the removal safe, and the
    point of it. Anywhere else ("bt\x004111", "1663 \u200b5232 ...", "a.org\u200bbt",
    "bt\u200bES04...") it would let a number or address run on into its neighbour.
    """
    after = text[at : at + 1]
    if not (before.isalnum() and after.isalnum()):
        # "1663 \u200b5232": a digit beside a separator would run on across it
        return (before.isdigit() and after in _SEPARATORS) or (
            before in _SEPARATORS and after.isdigit()
        )
    if not (before.isalpha() and after.isalpha()) or _NUMBERISH.match(text, at):
        return True
    word = text[max(0, begin - 64) : begin].split()[-1:]
    return bool(word) and any(c in "@.:/" or c.isdigit() for c in word[0])


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
    # Overlapped: a run that is not one number must not hide one that starts inside it.
    drop: list[int] = []
    hard: list[int] = []
    taken = 0
    for match in _DIGIT_RUN.finditer(norm.text, overlapped=True):
        if match.start() < taken:
            continue
        for stop in range(match.end(), match.start(), -1):
            run = norm.text[match.start() : stop]
            digits = [c for c in run if c.isdigit()]
            if len(digits) < 12 or not _CARD_GROUPS.fullmatch(run) or not _luhn_ok(digits):
                continue
            if _SHORT_TAIL.search(run) and _MORE_DIGITS.match(norm.text, stop):
                continue  # "4111-...-1111 589-70-..." : the 589 begins the next number
            drop.extend(i for i in range(match.start(), stop) if norm.text[i] in _SEPARATORS)
            taken = stop
            break
    taken = 0
    for match in _IBAN_RUN.finditer(norm.text, overlapped=True):
        if match.start() < taken:
            continue
        span = _iban_prefix(norm.text, match.start(), match.end())
        if span is not None:
            drop.extend(i for i in range(*span) if norm.text[i] in _SEPARATORS)
            taken = span[1]
            if norm.text[taken : taken + 1] in _SEPARATORS and taken + 1 < len(norm.text):
                # Presidio's IBAN pattern runs on over "<IBAN> 2221..." and then fails its
                # checksum: the separator after a whole IBAN becomes a hard boundary.
                hard.append(taken)
    if not drop and not hard:
        return norm
    gone = set(drop)
    keep = [i for i in range(len(norm.text)) if i not in gone]
    chars = list(norm.text)
    for at in hard:
        chars[at] = "\n"
    return Normalised(
        norm.original,
        "".join(chars[i] for i in keep),
        [norm.starts[i] for i in keep],
        [norm.ends[i] for i in keep],
        norm.may_join,
    )


def _luhn_ok(digits: Sequence[str]) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _iban_prefix(text: str, start: int, end: int) -> tuple[int, int] | None:
    """The longest run of whole groups from `start` that is a valid IBAN, if any.

    It must have its country's length and layout (Presidio's per-country formats) and pass
    mod 97, so a word after an IBAN ("... 677 bt") is never taken as its last group.
    """
    groups = [m.span() for m in _GROUP.finditer(text, start, end)]
    for count in range(len(groups), 0, -1):
        stop = groups[count - 1][1]
        compact = "".join(c for c in text[start:stop] if c not in _SEPARATORS).upper()
        layout = _iban_layouts().get(compact[:2])
        if layout is not None and layout.fullmatch(compact) and _mod97_ok(compact):
            return start, stop
    return None


@lru_cache(maxsize=1)
def _iban_layouts() -> dict[str, regex.Pattern[str]]:
    """Each IBAN country's layout, from Presidio's per-country IBAN formats."""
    from presidio_analyzer.predefined_recognizers.generic.iban_patterns import regex_per_country

    return {country: regex.compile(layout) for country, layout in regex_per_country.items()}


def _mod97_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    if not rearranged.isalnum() or not rearranged.isascii():
        return False
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
