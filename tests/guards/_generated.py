"""Generated PII values for property tests: valid card numbers and IBANs in written forms."""

from __future__ import annotations

import random
import string

__all__ = ["SHORT_WORDS", "card_number", "iban", "luhn_digit", "written"]

# Every one- and two-letter word, as written at a sentence start and inside one.
SHORT_WORDS = [
    w
    for a in string.ascii_lowercase
    for w in [a, a.upper(), *(a + b for b in string.ascii_lowercase)]
] + [(a + b).capitalize() for a in string.ascii_lowercase for b in string.ascii_lowercase]
_IIN = ["4", "51", "52", "53", "54", "55", "2221", "2720", "34", "37", "6011", "65", "3528"]
_LENGTHS = {"34": [15], "37": [15]}
_GROUPINGS = {15: [[4, 6, 5], [15]], 16: [[4, 4, 4, 4], [16]], 19: [[4, 4, 4, 4, 3], [19]]}
_IBAN_FORMS = {"DE": 18, "FR": 23, "ES": 20, "AT": 16, "BE": 12, "PL": 24}  # digits-only BBANs


def luhn_digit(body: str) -> str:
    """The check digit that makes `body` + digit pass Luhn."""
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def card_number(rng: random.Random) -> str:
    """A Luhn-valid card number with a real issuer prefix, digits only."""
    prefix = rng.choice(_IIN)
    length = rng.choice(_LENGTHS.get(prefix, [16, 16, 16, 19]))
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def iban(rng: random.Random) -> str:
    """A mod-97-valid IBAN of one of a few countries (digits-only BBAN), compact."""
    country = rng.choice(sorted(_IBAN_FORMS))
    bban = "".join(rng.choice(string.digits) for _ in range(_IBAN_FORMS[country]))
    numeric = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - numeric % 97:02d}{bban}"


def written(number: str, rng: random.Random, separator: str | None = None) -> str:
    """`number` as people write it: plain, or in groups of four (cards: their issuer's groups)."""
    sep = rng.choice(["", " ", "-"]) if separator is None else separator
    if not sep:
        return number
    if number[:2].isalpha():
        groups = [number[i : i + 4] for i in range(0, len(number), 4)]
    else:
        sizes = rng.choice(_GROUPINGS.get(len(number), [[len(number)]]))
        groups, at = [], 0
        for size in sizes:
            groups.append(number[at : at + size])
            at += size
    return sep.join(groups)
