"""Latency each detector adds per KB, measured in the screener against an empty stage."""

from __future__ import annotations

import time

from guards import Screener, ScreeningConfig, Stage, StageConfig
from tests.bench.bench_guards import texts

__all__ = ["eval_latency"]

_ROUNDS = 30


async def _median_ms(screener: Screener, text: str, config: ScreeningConfig, stage: Stage) -> float:
    samples = []
    for _ in range(_ROUNDS):
        started = time.perf_counter()
        await screener.screen(text, stage, config, tenant="eval")
        samples.append(time.perf_counter() - started)
    return sorted(samples)[len(samples) // 2] * 1000


async def eval_latency(screener: Screener, detectors: list[str]) -> None:
    """Print median ms per KB added by each detector alone, on 1 KB and 10 KB texts."""
    print("\nLatency added per KB (median of 30; the pipeline with no detector as the baseline)")
    samples = texts()
    print(f"  {'detector':22s} " + " ".join(f"{name:>16s}" for name in samples))
    for stage, name in [(Stage.INPUT, d) for d in detectors] + [(Stage.INPUT, None)]:
        config = ScreeningConfig(input=StageConfig(detectors=[] if name is None else [name]))
        cells = []
        for text in samples.values():
            base = await _median_ms(
                screener, text, ScreeningConfig(input=StageConfig(detectors=[])), stage
            )
            own = await _median_ms(screener, text, config, stage)
            kb = len(text) / 1024
            cells.append(f"{(own - base) / kb if name else base / kb:16.3f}")
        print(f"  {name or '(pipeline, no detector)':22s} " + " ".join(cells))
    default = ScreeningConfig()
    for label, text in samples.items():
        ms = await _median_ms(screener, text, default, Stage.INPUT)
        per_kb = ms / (len(text) / 1024)
        print(f"  default input policy, {label}: {ms:.2f} ms ({per_kb:.2f} ms per KB)")
