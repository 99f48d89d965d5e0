"""Features of the injection classifier, shared by training and the detector.

A text is lower-cased and cut into word tokens (letters and digits). Each token gives its
word (`w:`), its character 4-grams with a space at both ends (`c:`, so "vergiss" and
"vergessen" share " ver"), and the pair it forms with the token before it (`b:`). Function
words ("the", "that", "und") give only their pairs: alone they say nothing about intent,
and the model would learn how often templates use them. A text's
vector is the feature counts divided by the square root of their total, so long and short
texts score alike.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import regex

__all__ = ["pair_feature", "text_features", "token_features", "tokens"]

_TOKEN = regex.compile(r"[\p{L}\p{N}]+")
_N = 4
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


def pair_feature(before: str, token: str) -> str:
    """The feature of two tokens in a row."""
    return f"b:{before} {token}"


def text_features(text: str) -> Counter[str]:
    """Every feature of `text` with its count (training side; the detector sums per window)."""
    counts: Counter[str] = Counter()
    previous = None
    for token, _start, _end in tokens(text):
        counts.update(token_features(token))
        if previous is not None:
            counts[pair_feature(previous, token)] += 1
        previous = token
    return counts
