"""`pii` through the real pipeline: Presidio on the model-free engine, text -> (type, span)."""

from __future__ import annotations

import pytest

from guards import GuardOptions, ScreeningConfig, Stage, StageConfig
from guards.pii import PiiDetector
from tests.guards._helpers import spans
from tests.guards.conftest import Screen

FOUND = [
    ("Write to alice.smith@example.org today", "EMAIL_ADDRESS", "alice.smith@example.org"),
    ("card 4111 1111 1111 1111 exp 12/29", "CREDIT_CARD", "4111 1111 1111 1111"),
    ("card 4111-1111-1111-1111", "CREDIT_CARD", "4111-1111-1111-1111"),
    ("amex 378282246310005 on file", "CREDIT_CARD", "378282246310005"),
    ("mastercard 2223000048400011", "CREDIT_CARD", "2223000048400011"),
    ("visa 4131034282458809939 (19 digits)", "CREDIT_CARD", "4131034282458809939"),
    ("my phone number is (415) 555-0132", "PHONE_NUMBER", "(415) 555-0132"),
    ("Mobile: 0490 75 40 81", "PHONE_NUMBER", "0490 75 40 81"),
    ("call me on +44 20 7946 0958 tomorrow", "PHONE_NUMBER", "+44 20 7946 0958"),
    ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN_CODE", "GB82 WEST 1234 5698 7654 32"),
    ("iban DE89370400440532013000", "IBAN_CODE", "DE89370400440532013000"),
    ("my ssn is 536-90-4399", "US_SSN", "536-90-4399"),
    ("login from 203.0.113.42 failed", "IP_ADDRESS", "203.0.113.42"),
    ("host 2001:db8::8a2e:370:7334 up", "IP_ADDRESS", "2001:db8::8a2e:370:7334"),
    (
        "send btc to 1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
        "CRYPTO",
        "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
    ),
]


@pytest.mark.parametrize(("text", "kind", "value"), FOUND)
def test_when_text_holds_pii_then_type_and_span_are_reported(
    screen: Screen, text: str, kind: str, value: str
) -> None:
    result = screen(text)
    assert (kind, value) in spans(result, text)
    assert result.verdict == "redact"
    assert value not in result.text and f"<{kind}>" in result.text


@pytest.mark.parametrize(
    "text",
    [
        "The meeting moved to room 4.12 at 10:30 on 2024-05-06.",
        "Build 3.11.7 (tags/v3.11.7:fa7a6f2, Dec  4 2023, 19:24:49) [GCC 12.2.0]",
        "request_id=9f1c2e4a-7b3d-4e5f-8a9b-0c1d2e3f4a5b duration_ms=1234",
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "It is important to choose the most cost-effective option.",
        "Order 1234 shipped; 56 items, total 789.10 EUR.",
        "epoch 1700000000123 and 1700000000",
    ],
)
def test_when_text_is_benign_then_pii_finds_nothing(screen: Screen, text: str) -> None:
    result = screen(text)
    assert result.findings == [] and result.verdict == "allow"


def test_when_context_word_is_near_then_weak_phone_pattern_counts(screen: Screen) -> None:
    with_context = screen("Phone: 699 956 915")
    without = screen("Reference 699 956 915")
    assert ("PHONE_NUMBER", "699 956 915") in spans(with_context, "Phone: 699 956 915")
    assert without.findings == []


def test_when_card_number_is_also_phone_like_then_only_the_card_is_reported(
    screen: Screen,
) -> None:
    text = "phone or card? 4992819677820891"
    assert spans(screen(text), text) == {("CREDIT_CARD", "4992819677820891")}


def test_when_entities_are_restricted_then_other_types_are_not_reported(screen: Screen) -> None:
    config = ScreeningConfig(input=StageConfig(detectors=["pii"], entities=["EMAIL_ADDRESS"]))
    text = "a@example.com 4111 1111 1111 1111"
    assert spans(screen(text, config=config), text) == {("EMAIL_ADDRESS", "a@example.com")}


def test_when_opt_in_entity_is_listed_then_it_is_reported(screen: Screen) -> None:
    config = ScreeningConfig(input=StageConfig(detectors=["pii"], entities=["URL"]))
    text = "see https://example.org/docs for more"
    assert ("URL", "https://example.org/docs") in spans(screen(text, config=config), text)


def test_when_no_model_is_configured_then_ner_types_are_not_active() -> None:
    detector = PiiDetector(GuardOptions())
    assert "PERSON" not in detector.entities()
    assert {"CREDIT_CARD", "EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN"} <= set(detector.entities())


def test_when_names_are_screened_without_a_model_then_they_are_not_found(screen: Screen) -> None:
    # Honest about the limit: PERSON needs a spaCy model the operator provides.
    config = ScreeningConfig(input=StageConfig(detectors=["pii"], entities=["PERSON"]))
    assert screen("My name is John Smith", Stage.INPUT, config).findings == []
