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
    # the SSN's 3-2-4 layout stays an SSN after "number", which phones take as context
    ("number 494-63-1663", "US_SSN", "494-63-1663"),
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
    # Two groups that no region's plan validates: only a context word makes them a phone.
    with_context = screen("Phone: 7891 2345")
    without = screen("Reference 7891 2345")
    assert ("PHONE_NUMBER", "7891 2345") in spans(with_context, "Phone: 7891 2345")
    assert without.findings == []


def test_when_a_valid_number_is_written_in_three_groups_then_it_counts_without_context(
    screen: Screen,
) -> None:
    # The cost of reading "01 76 30 82 46" without a phone word: a reference number written
    # like a phone number, and valid as one, is taken for one.
    assert ("PHONE_NUMBER", "699 956 915") in spans(screen("Ref 699 956 915"), "Ref 699 956 915")


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


# Phone numbers in the forms people and generators write them.
PHONES = [
    ("Desk: (898)666-3621x0135", "(898)666-3621x0135"),
    ("Fax: 345-899-3560x4587", "345-899-3560x4587"),
    ("call 415 555 0132 ext. 12 after five", "415 555 0132 ext. 12"),
    ("Mobile: 03.93.92.16.85", "03.93.92.16.85"),
    ("Office 259.735.7502 until noon", "259.735.7502"),
    ("+1-903-140-4508x769 is the desk line", "+1-903-140-4508x769"),
    ("Desk: +41 (0)96 471 07 95", "+41 (0)96 471 07 95"),
    ("Fax: 001-253-366-9781", "001-253-366-9781"),
    ("ring 0049 30 1234567 tomorrow", "0049 30 1234567"),
    ("call me: 4 1 5 5 5 5 0 1 3 2", "4 1 5 5 5 5 0 1 3 2"),
    ("They're not answering at 0680 298 70 63", "0680 298 70 63"),
    ("Telefon: 030 1234567", "030 1234567"),
    ("Try +44114 496 0815 tomorrow", "+44114 496 0815"),  # a country code, no context word
    ("Send it to (020)74960083 please", "(020)74960083"),
    ("He wrote 01 76 30 82 46 on the form", "01 76 30 82 46"),  # valid, in five groups
    ("Send it to +33 2 50 94 82 19 please", "+33 2 50 94 82 19"),  # one-digit area code
    ("My number is +61-7-7975-4323", "+61-7-7975-4323"),
    ("Ring 1-787-574-9118 after six.", "1-787-574-9118"),  # North American trunk 1
    ("My number is (+358) 252760189", "(+358) 252760189"),  # country code in brackets
    ("Contact: 0460.308.246", "0460.308.246"),  # dots, a trunk 0 and nine digits
    ("My number is 0483597971", "0483597971"),  # "number" is a context word, as in Presidio
]


@pytest.mark.parametrize(("text", "value"), PHONES)
def test_when_a_phone_number_is_written_any_common_way_then_it_is_found(
    screen: Screen, text: str, value: str
) -> None:
    assert ("PHONE_NUMBER", value) in spans(screen(text), text)


@pytest.mark.parametrize(
    "text",
    [
        "version 1.2.3.4 released",
        "order 2024-01-02 shipped",
        "the range 1990-2020 is covered",
        "pi is 3.14159265",
        "build 20240102.1 passed",
        "On 2018-01-14 03:07:43 the process began",
        "version 0.24.1 and 2.2.366 installed",
        "it costs 3 500 000 euros",
    ],
)
def test_when_digits_are_not_a_phone_number_then_none_is_reported(
    screen: Screen, text: str
) -> None:
    assert not any(f.type == "PHONE_NUMBER" for f in screen(text).findings)


# Identifiers told by the words around them; the finding is the value only.
IDENTIFIERS = [
    ("passport no. C01X00T47, issued 2019", "PASSPORT", "C01X00T47"),
    ("Passport number: 912803456", "PASSPORT", "912803456"),
    ("Reisepass Nr. C4J8K2L9M", "PASSPORT", "C4J8K2L9M"),
    ("numéro de passeport : 18AB12345", "PASSPORT", "18AB12345"),
    ("account number: 0012 3456 78", "BANK_ACCOUNT", "0012 3456 78"),
    ("Bank account 12345678901", "BANK_ACCOUNT", "12345678901"),
    ("Kontonummer: 532013000", "BANK_ACCOUNT", "532013000"),
    ("routing number 021000021", "ABA_ROUTING_NUMBER", "021000021"),
    ("ABA: 011000015 for wires", "ABA_ROUTING_NUMBER", "011000015"),
    ("sort code 20-00-00, account 55779911", "UK_SORT_CODE", "20-00-00"),
    ("sort code 20-00-00, account 55779911", "BANK_ACCOUNT", "55779911"),
]
GLUED_IPS = [
    ("host10.0.0.7 is down", "10.0.0.7"),
    ("ip=203.0.113.9,port=22", "203.0.113.9"),
    ("from203.0.113.42to", "203.0.113.42"),
    ("addr:fe80::1%eth0 up", "fe80::1%eth0"),
    ("peer2001:db8::8a2e:370:7334", "2001:db8::8a2e:370:7334"),
    ("[192.0.2.1]:8080", "192.0.2.1"),
]


@pytest.mark.parametrize(("text", "kind", "value"), IDENTIFIERS)
def test_when_an_identifier_follows_its_name_then_its_value_is_found(
    screen: Screen, text: str, kind: str, value: str
) -> None:
    result = screen(text)
    assert (kind, value) in spans(result, text)
    assert value not in result.redacted_text


def test_when_digits_after_an_identifiers_name_look_like_a_phone_then_only_the_identifier_counts(
    screen: Screen,
) -> None:
    # "number" raises phones (as in Presidio), and "0012 3456 78" has a phone's layout.
    text = "account number: 0012 3456 78"
    assert {kind for kind, _value in spans(screen(text), text)} == {"BANK_ACCOUNT"}


@pytest.mark.parametrize(
    "text",
    [
        "routing number 021000022",  # fails the ABA checksum
        "passport photos are ready",
        "I will pass 123456789 on",
        "the account was created in 2019",
        "sort code is missing",
    ],
)
def test_when_a_number_lacks_its_context_or_checksum_then_it_is_not_an_identifier(
    screen: Screen, text: str
) -> None:
    kinds = {"PASSPORT", "BANK_ACCOUNT", "ABA_ROUTING_NUMBER", "UK_SORT_CODE"}
    assert not any(f.type in kinds for f in screen(text).findings)


@pytest.mark.parametrize(("text", "value"), GLUED_IPS)
def test_when_an_ip_address_is_glued_to_a_word_then_it_is_found(
    screen: Screen, text: str, value: str
) -> None:
    assert ("IP_ADDRESS", value) in spans(screen(text), text)


@pytest.mark.parametrize(
    "text",
    [
        "version v1.2.3.4",
        "999.1.1.1 is no address",
        "ratio 10:30:45",
        "aa:bb:cc:dd:ee:ff",
        "std::begin(v)",
        ".. code:: python",
    ],
)
def test_when_dotted_or_coloned_numbers_are_not_addresses_then_no_ip_is_reported(
    screen: Screen, text: str
) -> None:
    assert not any(f.type == "IP_ADDRESS" for f in screen(text).findings)
