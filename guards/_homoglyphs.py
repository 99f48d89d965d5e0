"""Confusable characters folded to ASCII before detection (never in the text returned).

Cyrillic and Greek letters that render like Latin ones, Unicode dashes and minus signs, and
typographic quotes: an attacker writes "іgnоre" with Cyrillic і and о to slip past a rule
matching "ignore". NFKC already folds full-width and mathematical letters and digits, so
they are not listed. One character to one character, so folding never moves an offset.
"""

from __future__ import annotations

__all__ = ["HOMOGLYPHS"]

_PAIRS = {
    # Cyrillic lower case
    "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "ӏ": "l", "һ": "h", "ү": "y", "ӽ": "x", "ɡ": "g", "ı": "i",
    # Cyrillic upper case
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    "Ӏ": "I", "Һ": "H", "Ү": "Y",
    # Greek
    "α": "a", "ο": "o", "ρ": "p", "ι": "i", "κ": "k", "ν": "v", "τ": "t", "υ": "u", "χ": "x",
    "ε": "e", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
    "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
    # Armenian
    "օ": "o", "ս": "u", "ց": "g", "զ": "q",
    # dashes, minus signs, quotes
    "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-", "―": "-", "−": "-", "﹘": "-",
    "‘": "'", "’": "'", "‚": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"',
}  # fmt: skip

HOMOGLYPHS: dict[int, str] = {ord(src): dst for src, dst in _PAIRS.items()}
