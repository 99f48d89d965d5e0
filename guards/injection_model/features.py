"""Features of the injection classifier, shared by training and the detector.

A text is lower-cased and cut into word tokens (letters, digits and underscores: code's
`set_write_buffer` is one identifier, not the words "write" and "buffer"). Each token gives its
word (`w:`) and its character 5-grams with a space at both ends (`c:`, so "vergiss" and
"vergessen" share " verg", and a typo spoils one or two grams, not the word); each token
after the first gives the pair it forms with the one before it (`b:`) and the 5-grams that
cross the gap between them (`x:`, "ore a" of "ignore all", "ss al" of "vergiss alles").
Function words ("the", "that", "und") give no word or grams of their own, and two of them in
a row no pair: alone they say nothing about intent, and the model would learn how often the
templates use them ("can you", "how to"). A text's vector is the feature counts divided by
the square root of their total, so long and short texts score alike.

Measured on the dev split, the project's validation set and the benign corpus (`make eval`),
5-grams instead of 4-grams, no pairs of function words, the crossing grams and identifiers
as one token each lowered the false positives at the same recall.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import regex

__all__ = ["context_features", "text_features", "token_features", "tokens"]

_TOKEN = regex.compile(r"[\p{L}\p{N}_]+")
_N = 5
_CROSS = _N - 2  # letters taken from each side of a gap
_FUNCTION_WORDS = frozenset(
    "a an the and or but of in on at to for with by from as is are was were be been it its "
    "this that these those there here which who what when how if then than so not no do does "
    "can will would should may might must have has had i me my we our they them their he she "
    "his her all any some every each also just only very more most such into about over "
    "der die das und oder ein eine einer eines ist sind war zu im in mit von den dem des es "
    "auf für nicht auch als wie was wir ich sie er "
    "el la los las y o de en un una es que por para con del se lo "
    "le les et ou un une est que pour avec des du au "
    "o os as e um uma é que para com do da em "
    "il lo gli e un una è che per con di del della".split()
)


def tokens(text: str) -> list[tuple[str, int, int]]:
    """(lower-cased token, start, end) of each word of `text`."""
    return [(m.group().lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


@lru_cache(maxsize=65536)
def token_features(token: str) -> tuple[str, ...]:
    """The word and character n-gram features of one token."""
    if token in _FUNCTION_WORDS or len(token) < 2 or token.isdigit():
        return ()  # single letters and numbers (code, tables) are noise too
    padded = f" {token} "
    grams = [f"c:{padded[i : i + _N]}" for i in range(max(1, len(padded) - _N + 1))]
    return (f"w:{token}", *grams)


def context_features(before: str, token: str) -> list[str]:
    """The features of two tokens in a row: their pair and the grams across the gap."""
    out = [] if before in _FUNCTION_WORDS and token in _FUNCTION_WORDS else [f"b:{before} {token}"]
    gap = f"{before[-_CROSS:]} {token[:_CROSS]}"
    out += [f"x:{gap[i : i + _N]}" for i in range(len(gap) - _N + 1)]
    return out


def text_features(text: str) -> Counter[str]:
    """Every feature of `text` with its count (training side; the detector sums per window)."""
    counts: Counter[str] = Counter()
    previous = None
    for token, _start, _end in tokens(text):
        counts.update(token_features(token))
        if previous is not None:
            counts.update(context_features(previous, token))
        previous = token
    return counts
