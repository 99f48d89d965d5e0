"""Presidio recognizers added to the predefined ones, where those miss common real formats.

- Card numbers: Presidio's pattern covers 13-17 digits starting 1, 3, 4, 5[0-5] or 6; real
  cards also are 12-19 digits (Maestro 12+, Visa 19) and start 2221-2720 (Mastercard),
  2131/1800 (JCB). Same Luhn validation as Presidio's, so a match scores 1.0.
- Phone numbers: Presidio's recognizer runs `phonenumbers`' matcher over the whole text
  once per region (eight of them): ~70 ms for a KB dense with numbers, and national formats
  of other countries ("0490 75 40 81", "699 956 915") are missed. This one replaces it: a
  regex takes any 7-15-digit grouping (with a country code, maybe in brackets and then a
  one-digit area code: "(+358) 252760189", "+33 2 50 94 82 19"; a North American trunk 1:
  "1-787-574-9118"; "00"/"001" exit prefix, trunk
  "(0)", area code in brackets, dots, dashes, spaces, one digit at a time, and an extension
  "x818", "ext. 12") at 0.2; a candidate that `phonenumbers` validates (international, or
  national in one of Presidio's eight regions) scores 0.4 as Presidio's does, 0.5 when
  written in three groups or more ("01 76 30 82 46"). Below 0.5, a context word nearby
  ("phone", "mobile", "call", "fax", "ring", ...; "number" unless another identifier's name
  comes before it: "my number is", not "account number") must add Presidio's 0.35. A number in a
  layout nothing else has (a "+" or "00" country code, an area code in brackets, North
  American 3-3-4: "+44114 496 0815", "(602)272-9781", "345-899-3560x4587") scores 0.6
  without one, valid or not (generated test data is often not).
"""

from __future__ import annotations

from typing import Any

import phonenumbers
import regex
from presidio_analyzer import Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

import guards._env  # noqa: F401

__all__ = ["card_recognizer", "context_phone_recognizer"]

_CARD = r"(?<![+\d])\b(?=4|5\d|2[2-7]|3\d|6|1800|2131)\d{12,19}\b"
_EXT = r"(?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6})?"
_PHONE = (
    r"(?<![\w+.\-/:])(?:"
    # a country code ("+33", "0049", "(+358)"), then groups, the first of one digit or more
    r"(?:(?:\+|00)\d{1,3}[ .\-]?|\(\+\d{1,3}\)[ .\-]?)(?:\(0\)[ .\-]?)?(?:\(\d{1,5}\)[ .\-]?)?"
    r"\d{1,12}(?:[ .\-]\d{1,8}){0,5}"
    # North American with the trunk 1 ("1-787-574-9118")
    r"|1[ .\-]\d{3}[ .\-]\d{3}[ .\-]\d{4}"
    # national: groups of two digits or more, an area code in brackets, one digit at a time
    r"|(?:\(0\)[ .\-]?)?(?:\(\d{1,5}\)[ .\-]?)?(?:\d{2,12}(?:[ .\-]\d{2,8}){0,4}|\d(?: \d){6,14})"
    r")" + _EXT + r"(?![\w\-]|[.:]\d)"
)
# Layouts only phone numbers have: a "+" country code with separators, or North American
# 3-3-4 with brackets, dashes or dots (an extension may follow).
_STRONG_LAYOUT = regex.compile(
    r"\(?\+\d.*"  # a country code, maybe in brackets
    r"|(?:00|011)\d{1,3}[ .\-].*"  # an exit prefix, then the country code
    r"|\(\d{2,5}\)[ .\-]?\d.*"  # an area code in brackets
    r"|(?:1[\-. ])?\d{3}([\-.])\d{3}\1\d{4}.*"  # North American 3-3-4
)
# Three or more groups of digits ("01 76 30 82 46", "0151 496 0091"): how phone numbers, and
# few other numbers, are written.
_GROUPED = regex.compile(r"\d+(?:[ .\-]\d+){2,}")
_PHONE_CONTEXT = [
    "phone", "telephone", "tel", "mobile", "cell", "cellphone", "call", "fax", "desk",
    "office", "contact", "reach", "sms", "whatsapp", "dial", "message", "messages", "text",
    "answer", "answering", "voicemail", "ring", "hotline", "helpline", "landline", "extension",
    "registered", "callback", "emergency", "telefon", "handy", "numéro", "número", "numero",
    "téléphone", "teléfono", "telefono",
]  # fmt: skip
_NOT_PHONE = regex.compile(
    r"\d{1,3}(?:\.\d{1,3}){3}"  # IPv4
    r"|\d{4}[\-./]\d{1,2}[\-./]\d{1,2}"  # ISO-like dates
    r"|\d{1,2}[\-./]\d{1,2}[\-./]\d{4}"  # day-month-year dates
    # versions and decimals; not 555.555.5555, nor a trunk 0 and nine digits or more
    r"|(?!\d{3}\.\d{3}\.\d{4}$|0(?:\.?\d){8})\d{1,4}(?:\.\d{1,4}){1,3}"
    r"|(?:19|20)\d\d\s?[\-/]\s?(?:19|20)\d\d"  # year ranges
    r"|\d{3}-\d{2}-\d{4}"  # the US social security number's layout: the SSN recognizer's
)
# "My number is ...", "Nummer: ...": Presidio's phone context has "number"; here it counts
# only when no other identifier's name stands before it ("account number", "license number").
_NUMBER_BEFORE = regex.compile(
    r"(?i)(?:(?<!\w)([^\W\d_]+)[ \t]+)?(?:number|nummer)\b[ \t]*(?:is|was|:|-)?[ \t]*$"
)
_OTHER_NUMBERS = frozenset(
    "license licence security social card credit debit account bank iban routing sort passport "
    "order serial reference ref tracking invoice customer policy case ticket id identification "
    "tax vat insurance member membership registration house street room flight seat model part "
    "version item product batch lot transaction confirmation booking reservation shipment parcel "
    "employee student patient badge plate vin apartment unit build issue page chapter".split()
)
_EXTENSION = regex.compile(r"(?:x|ext\.?)\s?\d+$")
_REGIONS = ("US", "GB", "DE", "FR", "IL", "IN", "CA", "BR")  # Presidio's default regions
_VALID_SCORE = 0.4
_GROUPED_SCORE = 0.5
_STRONG_SCORE = 0.6
_CONTEXT_BOOST = 0.35  # what Presidio's context enhancer adds


def _valid_number(candidate: str) -> bool:
    regions: tuple[str | None, ...] = (None,) if candidate.startswith("+") else _REGIONS
    for region in regions:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(candidate, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


class _ContextPhoneRecognizer(PatternRecognizer):
    """Digit groupings that look like phone numbers, trusted only next to a context word."""

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: Any = None,
        regex_flags: int | None = None,
    ) -> list[Any]:
        """Pattern matches: 0.6 in a phone-only layout; valid per `phonenumbers`, 0.5 in
        three groups or more, else 0.4."""
        results: list[Any] = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for result in results:
            candidate = text[result.start : result.end]
            if _STRONG_LAYOUT.fullmatch(candidate):
                result.score = _STRONG_SCORE
            elif _valid_number(candidate):
                result.score = _GROUPED_SCORE if _GROUPED.fullmatch(candidate) else _VALID_SCORE
            named = _NUMBER_BEFORE.search(text, max(0, result.start - 40), result.start)
            if named is not None and (named.group(1) or "").lower() not in _OTHER_NUMBERS:
                # as the context enhancer would for a context word, and only once
                result.score = min(1.0, max(result.score + _CONTEXT_BOOST, 0.4))
                result.recognition_metadata[RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = (
                    True
                )
        return results

    def invalidate_result(self, pattern_text: str) -> bool:
        """Reject dates, IPs, version numbers and digit counts no phone number has."""
        if _NOT_PHONE.fullmatch(pattern_text):
            return True
        digits = sum(ch.isdigit() for ch in _EXTENSION.sub("", pattern_text))
        return not 7 <= digits <= 15


def card_recognizer() -> Any:
    """Presidio's card recognizer (Luhn-validated) with the real IIN ranges and lengths."""
    return CreditCardRecognizer(
        patterns=[Pattern("Card number (IIN ranges, 12-19 digits)", _CARD, 0.3)],
        name="SandgateCardRecognizer",
    )


def context_phone_recognizer() -> Any:
    """A low-score phone pattern for any national format, raised by context words."""
    return _ContextPhoneRecognizer(
        supported_entity="PHONE_NUMBER",
        name="SandgateContextPhoneRecognizer",
        patterns=[Pattern("Phone number (any grouping)", _PHONE, 0.2)],
        context=_PHONE_CONTEXT,
    )
