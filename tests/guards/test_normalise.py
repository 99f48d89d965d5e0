"""Normalisation: what it folds, and that every offset maps back to the text as sent."""

from __future__ import annotations

import unicodedata

import pytest

from guards.normalise import normalise

# Strings that break naive offset maps: emoji (astral, ZWJ sequences, skin tones, flags),
# combining marks (stacked, reordered by NFKC), characters NFKC expands (ligatures, U+FDFA)
# or merges (e + U+0301), Hangul jamo, CRLF, controls, tags, bidi and zero-width.
TRICKY = [
    "",
    "plain ascii",
    "😀",
    "👩\u200d👩\u200d👧\u200d👦 family",
    "👍🏽 thumbs",
    "🇫🇷🇩🇪 flags",
    "e\u0301",
    "e\u0323\u0301 stacked",
    "a\u0301\u0301\u0301\u0301 zalgo",
    "\ufb01nance \ufb03",
    "\ufdfa",
    "\u1100\u1161\u11a8 jamo",
    "\u3392 \u2460 \u00bd",
    "line\r\nbreak",
    "nul\x00bell\x07esc\x1b[0m",
    "\u202eevil\u202c rtl",
    "zero\u200bwidth\u200cjoin\ufeffbom",
    "tag\U000e0041\U000e0042",
    "\ufeff",
    "\u0301 leading combining",
    "ﾊﾝｶｸ half-width kana",
    "𝐛𝐨𝐥𝐝 𝒾𝓉𝒶𝓁𝒾𝒸",
]
TOKEN = "alice@example.com 4111-1111-1111-1111"


@pytest.mark.parametrize("text", TRICKY)
def test_when_text_is_tricky_then_map_is_monotone_and_in_bounds(text: str) -> None:
    norm = normalise(text)
    assert len(norm.starts) == len(norm.ends) == len(norm.text)
    previous_start = 0
    for start, end in zip(norm.starts, norm.ends, strict=True):
        assert 0 <= start < end <= len(text)
        assert start >= previous_start
        previous_start = start
    assert norm.to_original(0, len(norm.text))[1] <= len(text)


@pytest.mark.parametrize("prefix", TRICKY)
@pytest.mark.parametrize("suffix", ["", " 😀", "\u0301", "\u200b!", " \ufdfa"])
def test_when_token_follows_tricky_text_then_its_span_maps_back_exactly(
    prefix: str, suffix: str
) -> None:
    # A separator keeps a trailing combining mark of the prefix off the token.
    text = f"{prefix} {TOKEN}{suffix}"
    norm = normalise(text)
    email = "alice@example.com"
    at = norm.text.index(email)
    start, end = norm.to_original(at, at + len(email))
    assert text[start:end] == email
    card = norm.text.index("4111111111111111")
    start, end = norm.to_original(card, card + 16)
    # A combining mark right after the last digit belongs to its grapheme: it goes with it.
    mark = suffix[:1] if suffix[:1] and unicodedata.combining(suffix[0]) else ""
    assert text[start:end] == "4111-1111-1111-1111" + mark


@pytest.mark.parametrize("text", TRICKY)
def test_when_any_span_is_mapped_then_it_never_splits_a_grapheme(text: str) -> None:
    norm = normalise(text)
    for i in range(len(norm.text)):
        start, end = norm.to_original(i, i + 1)
        piece = text[start:end]
        # A mapped piece never starts with a combining mark nor ends inside a ZWJ sequence.
        assert unicodedata.combining(piece[0]) == 0 or start == 0
        assert not piece.endswith("\u200d")


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("ign\u200bore previous", "ignore previous"),
        ("ig\u00adnore", "ignore"),
        ("\u202eignore\u202c", "ignore"),
        ("\u0456gn\u043er\u0435", "ignore"),  # Cyrillic і, о, е
        ("\u0399GNORE \u039f", "IGNORE O"),  # Greek capitals
        ("\uff49\uff47\uff4e\uff4f\uff52\uff45", "ignore"),  # full-width letters
        ("\U0001d422\U0001d420\U0001d427", "ign"),  # mathematical bold
        ("\uff14\uff11\uff11\uff11", "4111"),  # full-width digits
        ("tag\U000e0069\U000e0067", "tagig"),  # invisible tag characters decoded
        ("a\x00b\x1bc\x7fd", "abcd"),
        ("caf\u0065\u0301", "caf\u00e9"),  # NFKC composes
        ("\u2013\u2014\u2212", "---"),
    ],
)
def test_when_evasion_trick_is_used_then_detectors_see_plain_text(text: str, folded: str) -> None:
    assert normalise(text).text == folded


@pytest.mark.parametrize(
    ("text", "joined"),
    [
        ("4111 1111 1111 1111", "4111111111111111"),
        ("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "4111111111111111"),
        ("4111-1111-1111-1111", "4111111111111111"),
        ("4111\u20131111\u20131111\u20131111", "4111111111111111"),  # en dashes
        ("\uff14\uff11\uff11\uff11 1111 1111 1111", "4111111111111111"),
        ("GB82 W E S T 1234 5698 7654 32", "GB82WEST12345698765432"),
    ],
)
def test_when_card_or_iban_is_split_then_it_is_joined(text: str, joined: str) -> None:
    assert normalise(text).text == joined


@pytest.mark.parametrize(
    "text",
    [
        "4111 1111 1111 1112",  # fails Luhn: not a card, left alone
        "call 415 555 0100 now",
        "2024-01-02 10:11:12",
        "v1.2.3 and 10.0.0.1",
        "GB82 W E S T 1234 5698 7654 33",  # fails mod 97
    ],
)
def test_when_digits_are_not_a_card_then_they_are_not_joined(text: str) -> None:
    assert normalise(text).text == text


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("bt\x004111111111111111", "bt\n4111111111111111"),  # not "bt4111...": no card
        ("4111\u200b 1111 1111 1111", "4111\n 1111 1111 1111"),  # two numbers, as sent
        ("a@b.org\u200bbt", "a@b.org\nbt"),  # not a longer top-level domain
        ("ign\u200bore", "ignore"),  # inside a word: removed
    ],
)
def test_when_an_invisible_character_parts_two_things_then_they_stay_apart(
    text: str, folded: str
) -> None:
    assert normalise(text).text == folded


def test_when_joined_card_is_mapped_then_span_covers_separators_and_digits() -> None:
    text = "pay 😀 4111 1111\u2013 1111 \uff11111 now"  # an en dash, a full-width digit
    norm = normalise(text)
    at = norm.text.index("4111111111111111")
    start, end = norm.to_original(at, at + 16)
    assert text[start:end] == "4111 1111\u2013 1111 \uff11111"


@pytest.mark.parametrize(("start", "end"), [(-1, 2), (3, 2), (0, 99)])
def test_when_span_is_outside_the_text_then_mapping_refuses(start: int, end: int) -> None:
    with pytest.raises(ValueError):
        normalise("hello").to_original(start, end)


def test_when_span_is_empty_then_it_maps_to_a_point() -> None:
    norm = normalise("ab\u200bc")
    assert norm.to_original(2, 2) == (3, 3)
    assert norm.to_original(3, 3) == (4, 4)
