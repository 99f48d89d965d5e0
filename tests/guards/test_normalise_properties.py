"""Normalisation never destroys a match the raw text had (property tests over generated texts).

The normaliser joins split card numbers and IBANs and removes invisible characters; each of
those once glued a neighbouring word to a number ("Number is 4916..." became "is4916...",
an IBAN candidate whose prefix passed mod 97), and the card was lost. Here Presidio's
recognizers run on the raw text, and whatever they find there the pipeline must still find.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guards import ScreeningConfig, StageConfig
from guards.presidio_engines import pii_analyzer
from tests.guards._generated import SHORT_WORDS, card_number, iban, written
from tests.guards.conftest import Screen

VALIDATED = ["CREDIT_CARD", "IBAN_CODE", "EMAIL_ADDRESS", "US_SSN", "IP_ADDRESS"]
PII_ONLY = ScreeningConfig(input=StageConfig(detectors=["pii"]))
_JOINERS = [" ", " ", ", ", "\n", "\u200b", " \u200b", "\u00a0", "\u200b ", ": ", " - ", "\x00"]
_WORDS = [*SHORT_WORDS[:60], "is", "Is", "IS", "no", "No", "number", "card", "IBAN", "to", "de"]


def _piece(draw: st.DrawFn) -> str:
    rng = random.Random(draw(st.integers(0, 2**32)))
    kind = draw(st.sampled_from(["word", "word", "card", "iban", "email", "ssn", "ip", "digits"]))
    if kind == "card":
        return written(card_number(rng), rng)
    if kind == "iban":
        return written(iban(rng), rng)
    if kind == "email":
        return f"{rng.choice(['ann', 'bo', 'x.y'])}{rng.randint(1, 99)}@example.org"
    if kind == "ssn":
        return f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"
    if kind == "ip":
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    if kind == "digits":
        return str(rng.randint(0, 10 ** rng.randint(1, 6)))
    return rng.choice(_WORDS)


@st.composite
def texts(draw: st.DrawFn) -> str:
    """A sentence of words, numbers and PII values, joined by spaces or invisible characters."""
    pieces = [_piece(draw) for _ in range(draw(st.integers(1, 7)))]
    out = pieces[0]
    for piece in pieces[1:]:
        out += draw(st.sampled_from(_JOINERS)) + piece
    return out


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )


@_settings(60)
@given(text=texts())
def test_when_raw_text_has_a_match_then_the_normalised_pipeline_finds_it(
    screen: Screen, text: str
) -> None:
    _assert_kept(screen, text)


@pytest.mark.slow
@_settings(1000)
@given(text=texts())
def test_when_a_thousand_raw_texts_have_matches_then_the_pipeline_finds_each(
    screen: Screen, text: str
) -> None:
    _assert_kept(screen, text)


def _assert_kept(screen: Screen, text: str) -> None:
    """Every validated match Presidio finds in the raw text is still found by the pipeline."""
    raw = pii_analyzer(None).analyze(text, language="en", entities=VALIDATED)
    found = screen(text, config=PII_ONLY).findings
    for match in raw:
        inside = any(
            other.entity_type != match.entity_type
            and other.start <= match.start
            and match.end <= other.end
            and other.end - other.start > match.end - match.start
            for other in raw
        )
        if match.score < 0.5 or inside:  # a card's digits inside an IBAN are the IBAN's
            continue
        assert any(
            (f.type == match.entity_type and f.start < match.end and match.start < f.end)
            # or digits that read as two valid values at once ("BE39 6819 3804 6656 1010":
            # an IBAN, or a card after "BE39") are reported as the longer one
            or (
                f.type in VALIDATED
                and f.start < match.end
                and match.start < f.end
                and f.end - f.start >= match.end - match.start
            )
            for f in found
        ), f"{match.entity_type} {text[match.start : match.end]!r} lost in {text!r}"


@pytest.mark.slow
def test_when_a_card_follows_any_short_word_then_it_is_found_and_redacted(screen: Screen) -> None:
    rng = random.Random(16)
    misses = []
    for i in range(10_000):
        word = SHORT_WORDS[i % len(SHORT_WORDS)]
        card = written(card_number(rng), rng)
        text = f"Number {word} {card}" if i % 2 else f"{word} {card}"
        result = screen(text, config=PII_ONLY)
        at = text.index(card)
        cards = [(f.start, f.end) for f in result.findings if f.type == "CREDIT_CARD"]
        if cards != [(at, at + len(card))] or card in result.text:
            misses.append(text)
    assert not misses, f"{len(misses)} misses, e.g. {misses[:5]}"
