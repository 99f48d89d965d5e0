"""Injection detection on the handed-over sets: recall per set and language, false positives on
the benign look-alikes, and precision / recall / F1 per detector, per split."""

from __future__ import annotations

from collections import Counter, defaultdict

from guards import Screener, ScreeningConfig, Stage
from tests.eval.data import Labelled
from tests.eval.metrics import Counts, print_table

__all__ = ["INJECTION_DETECTORS", "eval_injection"]

INJECTION_DETECTORS = ("injection", "injection_classifier")
_POLICY = "default input policy (block)"


async def _flags(screener: Screener, item: Labelled) -> set[str]:
    result = await screener.screen(item.text, Stage.INPUT, ScreeningConfig(), tenant="eval")
    found = {f.detector for f in result.findings if f.detector in INJECTION_DETECTORS}
    return found | ({_POLICY} if result.verdict == "block" else set())


async def eval_injection(
    screener: Screener,
    items: list[Labelled],
    splits: tuple[str, ...],
    show_dev_misses: bool = False,
) -> None:
    """Print the tables of `splits`; each of their texts is screened once with the default
    `input` policy."""
    rows = [(item, await _flags(screener, item)) for item in items if item.split in splits]
    names = [*INJECTION_DETECTORS, _POLICY]
    for split in splits:
        print(f"\nInjection ({split}): share flagged, per set and language")
        groups: dict[tuple[str, str, bool], list[set[str]]] = defaultdict(list)
        for item, flags in rows:
            if item.split == split:
                groups[(item.source, item.language, item.attack)].append(flags)
                groups[
                    ("ALL " + ("attacks" if item.attack else "benign"), item.language, item.attack)
                ].append(flags)
        print(
            f"  {'set':18s} {'lang':5s} {'kind':7s} {'n':>4s}  "
            + "  ".join(f"{n[:24]:>24s}" for n in names)
        )
        for (source, lang, attack), flagged in sorted(groups.items()):
            shares = [sum(name in f for f in flagged) / len(flagged) for name in names]
            kind = "attack" if attack else "benign"
            print(
                f"  {source:18s} {lang:5s} {kind:7s} {len(flagged):4d}  "
                + "  ".join(f"{s:24.3f}" for s in shares)
            )
        table = []
        for name in names:
            counts = Counts()
            for item, flags in rows:
                if item.split != split:
                    continue
                hit = name in flags
                counts.tp += hit and item.attack
                counts.fp += hit and not item.attack
                counts.fn += (not hit) and item.attack
            table.append((name, counts, "all sets, attacks vs benign look-alikes"))
        print_table(f"Injection ({split}), per detector", table)
        if show_dev_misses and split in ("dev", "validation"):
            for item, flags in rows:
                if item.split == split and item.attack != (_POLICY in flags):
                    kind = "missed attack" if item.attack else "false positive"
                    print(f"  {split} {kind} [{item.source}/{item.language}]: {item.text[:160]!r}")
        missed = Counter(
            item.source
            for item, flags in rows
            if item.split == split and item.attack and _POLICY not in flags
        )
        print(f"  attacks not blocked by source: {dict(missed)}")
