"""`make eval`: precision, recall and F1 of the screening pipeline on public and benign data.

    python -m tests.eval.run

- PII: Presidio's synthetic set (tests/data/pii), per entity type, on the default `input`
  policy with only the `pii` detector. A finding counts if it overlaps a gold span of the
  same type ("exact" counts identical spans). Reported on all rows and on two splits by
  template id: `dev` (even ids; the custom card and phone recognizers were tuned looking
  at misses of the whole set before this split existed, later changes looked at `dev`
  only) and `held-out` (odd ids).
- Injection: Giskard's prompts (tests/data/injection), share flagged by the `injection`
  detector and share blocked by the default `input` policy; split by row index parity.
- Benign corpus (tests/eval/corpus.py): share of texts flagged (verdict not `allow`) per
  stage, with the types that fired.
- Secrets: the `secrets` detector against detect-secrets on fabricated samples.
"""

from __future__ import annotations

import asyncio
import csv
import json
import time
from collections import Counter
from pathlib import Path

from guards import GuardOptions, Screener, ScreeningConfig, Stage, StageConfig
from guards.pii import PATTERN_ENTITIES
from tests.eval.corpus import benign_corpus
from tests.eval.metrics import Tally, print_table
from tests.eval.secret_samples import SECRET_SAMPLES

__all__ = ["main"]

DATA = Path(__file__).resolve().parents[1] / "data"
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


async def eval_pii(screener: Screener) -> None:
    """Per-type P/R/F1 on the synthetic PII set, all rows and by split."""
    rows = json.loads((DATA / "pii" / "presidio_synth_dataset_v2.json").read_text())
    tallies = {"all": Tally(), "dev": Tally(), "held-out": Tally()}
    for row in rows:
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
        split = "dev" if row["template_id"] % 2 == 0 else "held-out"
        for tally in (tallies["all"], tallies[split]):
            for kind, start, end in gold:
                hit = [
                    f for f in result.findings if f.type == kind and f.start < end and f.end > start
                ]
                tally.rows[kind].tp += bool(hit)
                tally.rows[kind].fn += not hit
                tally.rows[kind].exact += any(f.start == start and f.end == end for f in hit)
            for f in result.findings:
                if not any(f.type == k and f.start < e and f.end > s for k, s, e in gold):
                    tally.rows[f.type].fp += 1
    for name, tally in tallies.items():
        kinds = sorted(tally.rows, key=lambda k: (k not in TARGET_TYPES, _note(k), k))
        print_table(
            f"PII, Presidio synthetic set ({name}), per entity type",
            [(k, tally.rows[k], _note(k)) for k in kinds],
        )
        targets = tally.total(TARGET_TYPES)
        active = tally.total([k for k in tally.rows if k in PATTERN_ENTITIES])
        print_table(
            f"PII ({name}), detector `pii`, micro-averaged",
            [
                ("target pattern types", targets, f"exact spans {targets.exact}/{targets.tp}"),
                ("all active types", active, ""),
            ],
        )


async def eval_injection(screener: Screener) -> tuple[int, int]:
    """Share of Giskard's prompts flagged; returns (flagged, total)."""
    with (DATA / "injection" / "giskard_prompt_injections.csv").open(newline="") as handle:
        prompts = list(csv.DictReader(handle))
    by: dict[str, Counter[str]] = {}
    for row in prompts:
        result = await screener.screen(row["prompt"], Stage.INPUT, ScreeningConfig(), tenant="e")
        flagged = any(f.detector == "injection" for f in result.findings)
        split = "dev" if int(row["index"]) % 2 == 0 else "held-out"
        for key in ("all", split, f"group: {row['group']}"):
            by.setdefault(key, Counter())["total"] += 1
            by[key]["flagged"] += flagged
            by[key]["blocked"] += result.verdict == "block"
    print("\nInjection, Giskard prompt-injection set (attacks only)")
    for key, c in by.items():
        print(
            f"  {key:28s} {c['flagged']:3d}/{c['total']:3d} flagged by `injection` "
            f"({c['flagged'] / c['total']:.3f}); blocked by the default input policy "
            f"{c['blocked'] / c['total']:.3f}"
        )
    return by["all"]["flagged"], by["all"]["total"]


async def eval_benign(screener: Screener, injection: tuple[int, int]) -> None:
    """False-positive rate per stage on the benign corpus."""
    corpus, dropped = benign_corpus()
    kinds = Counter(t.kind for t in corpus)
    print(
        f"\nBenign corpus: {len(corpus)} texts {dict(kinds)}; {dropped} candidates dropped "
        "for holding an e-mail address or IPv4 literal"
    )
    for stage in (Stage.INPUT, Stage.OUTPUT, Stage.CODE):
        flagged: Counter[str] = Counter()
        types: Counter[str] = Counter()
        examples: list[str] = []
        injection_fp = 0
        for item in corpus:
            result = await screener.screen(item.text, stage, ScreeningConfig(), tenant="e")
            injection_fp += any(f.detector == "injection" for f in result.findings)
            if result.verdict != "allow":
                flagged[item.kind] += 1
                for f in result.findings:
                    types[f"{f.detector}/{f.type}"] += 1
                    if len(examples) < 6:
                        examples.append(
                            f"{item.kind} {item.source}: {f.type} "
                            f"{item.text[f.start : f.end][:40]!r}"
                        )
        total = sum(flagged.values())
        per_kind = ", ".join(f"{k} {flagged[k]}/{n}" for k, n in kinds.items())
        print(
            f"  stage {stage.value:6s}: {total}/{len(corpus)} flagged "
            f"({total / len(corpus):.2%}); {per_kind}"
        )
        if types:
            print(f"    types: {dict(types.most_common())}")
            for line in examples:
                print(f"    e.g. {line}")
        if stage is Stage.INPUT:
            tp, n = injection
            precision = tp / (tp + injection_fp) if tp + injection_fp else 0.0
            print(
                f"    `injection` precision with the benign corpus as negatives: {precision:.3f}"
                f" ({tp} attacks flagged, {injection_fp} benign texts flagged)"
            )


async def eval_secrets(screener: Screener) -> None:
    """`secrets` against detect-secrets: recall on fabricated samples, benign hits, cost."""
    corpus, _ = benign_corpus()
    code = [t.text for t in corpus if t.kind in ("python", "javascript")]
    print(f"\nSecrets: {len(SECRET_SAMPLES)} fabricated credentials; {len(code)} benign code texts")
    found_by: dict[str, set[int]] = {}
    for name in ("secrets", "detect_secrets"):
        config = ScreeningConfig(code=StageConfig(detectors=[name]))
        found_by[name] = set()
        for i, (text, kind) in enumerate(SECRET_SAMPLES):
            result = await screener.screen(text, Stage.CODE, config, tenant="e")
            wanted = [f for f in result.findings if name == "detect_secrets" or f.type == kind]
            if wanted:
                found_by[name].add(i)
        benign = 0
        started = time.perf_counter()
        for text in code:
            benign += bool((await screener.screen(text, Stage.CODE, config, tenant="e")).findings)
        per_kb = (time.perf_counter() - started) * 1000 / (sum(map(len, code)) / 1024)
        print(
            f"  {name:15s} samples found {len(found_by[name]):2d}/{len(SECRET_SAMPLES)}; "
            f"benign code texts flagged {benign}/{len(code)}; {per_kb:.2f} ms per KB of code"
        )
    extra = found_by["detect_secrets"] - found_by["secrets"]
    print(f"  samples detect-secrets found that `secrets` missed: {len(extra)}")


async def _main() -> None:
    screener = Screener(GuardOptions(hash_secret="evaluation-only-secret"))
    started = time.perf_counter()
    screener.warm_up()
    print(
        f"warm-up {time.perf_counter() - started:.1f} s; entity types not detectable "
        f"without a spaCy model: {', '.join(screener.unavailable_entities())}"
    )
    await eval_pii(screener)
    injection = await eval_injection(screener)
    await eval_benign(screener, injection)
    await eval_secrets(screener)


def main() -> None:
    """Run every evaluation and print the tables."""
    asyncio.run(_main())


if __name__ == "__main__":
    main()
