"""PII on Presidio's synthetic set: precision, recall and F1 per entity type, per split."""

from __future__ import annotations

from pathlib import Path

from guards import Screener, ScreeningConfig, Stage, StageConfig
from guards.pii import PATTERN_ENTITIES
from tests.eval.data import pii_rows
from tests.eval.metrics import Tally, print_table

__all__ = ["TARGET_TYPES", "eval_pii"]

TARGET_TYPES = ["EMAIL_ADDRESS", "CREDIT_CARD", "PHONE_NUMBER", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]
GOLD_TO_PRESIDIO = {"GPE": "LOCATION", "STREET_ADDRESS": "LOCATION", "DOMAIN_NAME": "URL"}
NEEDS_MODEL = {"PERSON", "LOCATION", "ORGANIZATION", "NRP"}
NO_RECOGNIZER = {"TITLE", "AGE", "ZIP_CODE"}
OPT_IN = {"URL", "DATE_TIME"}
PII_ONLY = ScreeningConfig(input=StageConfig(detectors=["pii"]))


def _note(kind: str) -> str:
    if kind in NEEDS_MODEL:
        return "needs a spaCy model (not detected without one)"
    if kind in NO_RECOGNIZER:
        return "no Presidio recognizer"
    if kind in OPT_IN:
        return "opt-in via `entities` (off by default)"
    return "target" if kind in TARGET_TYPES else ""


async def eval_pii(
    screener: Screener, root: Path, splits: tuple[str, ...], show_dev_misses: bool = False
) -> None:
    """Per-type P/R/F1 of the `pii` detector; a finding counts if it overlaps a gold span of
    its type ("exact" counts identical spans). Also checks no redacted text keeps a value."""
    tallies = {"dev": Tally(), "held-out": Tally()}
    leaks = {"dev": 0, "held-out": 0}
    for split, row in pii_rows(root):
        if split not in splits:
            continue
        text = row["full_text"]
        result = await screener.screen(text, Stage.INPUT, PII_ONLY, tenant="eval")
        gold = [
            (
                GOLD_TO_PRESIDIO.get(s["entity_type"], s["entity_type"]),
                s["start_position"],
                s["end_position"],
            )
            for s in row["spans"]
        ]
        tally = tallies[split]
        for kind, start, end in gold:
            hit = [f for f in result.findings if f.type == kind and f.start < end and f.end > start]
            tally.rows[kind].tp += bool(hit)
            tally.rows[kind].fn += not hit
            tally.rows[kind].exact += any(f.start == start and f.end == end for f in hit)
            if kind in TARGET_TYPES and text[start:end] in result.text:
                leaks[split] += 1
            if show_dev_misses and split == "dev" and not hit and kind in TARGET_TYPES:
                print(f"  dev miss {kind}: {text[max(0, start - 40) : end + 20]!r}")
        for f in result.findings:
            if not any(f.type == k and f.start < e and f.end > s for k, s, e in gold):
                tally.rows[f.type].fp += 1
                if show_dev_misses and split == "dev" and f.type in TARGET_TYPES:
                    value = text[f.start : f.end]
                    print(f"  dev false positive {f.type}: {value!r} in {text[:120]!r}")
    for name, tally in tallies.items():
        if name not in splits:
            continue
        kinds = sorted(tally.rows, key=lambda k: (k not in TARGET_TYPES, _note(k), k))
        print_table(
            f"PII, Presidio synthetic set ({name}), detector `pii`, per entity type",
            [(k, tally.rows[k], _note(k)) for k in kinds],
        )
        targets = tally.total(TARGET_TYPES)
        active = tally.total([k for k in tally.rows if k in PATTERN_ENTITIES])
        print_table(
            f"PII ({name}), micro-averaged",
            [
                ("six target types", targets, f"exact spans {targets.exact}/{targets.tp}"),
                ("all active types", active, ""),
            ],
        )
        print(f"  target values still in a redacted text ({name}): {leaks[name]}")


# Sentence frames written by the project, half with no phone word in them.
_FRAMES = [
    "You can reach me at {p}.", "My number is {p}", "Send it to {p} please", "{p}",
    "Contact: {p}", "Tel. {p}", "Ring {p} after six.", "Her cell is {p}.", "Dial {p} for support",
    "Details: {p}, Berlin office", "He wrote {p} on the form", "Try {p} tomorrow",
]  # fmt: skip
_LOCALES = [
    "en_US", "en_GB", "de_DE", "fr_FR", "it_IT", "es_ES", "nl_NL", "sv_SE", "da_DK", "pt_BR",
    "en_AU", "en_CA", "ja_JP", "cs_CZ", "fi_FI", "no_NO",
]  # fmt: skip


async def eval_generated_phones(screener: Screener, per_locale: int = 25) -> None:
    """Phone recall on Faker's numbers of 16 locales in the frames above (seeded)."""
    import random

    from faker import Faker

    rng = random.Random(3)
    found = total = 0
    for locale in _LOCALES:
        fake = Faker(locale)
        fake.seed_instance(7)
        for _ in range(per_locale):
            number = fake.phone_number()
            text = rng.choice(_FRAMES).format(p=number)
            result = await screener.screen(text, Stage.INPUT, PII_ONLY, tenant="eval")
            at = text.index(number)
            total += 1
            found += any(
                f.type == "PHONE_NUMBER" and f.start < at + len(number) and f.end > at
                for f in result.findings
            )
    print(
        f"\nPhone numbers from Faker ({len(_LOCALES)} locales, {total} texts): recall "
        f"{found / total:.3f}"
    )
