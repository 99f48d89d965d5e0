"""Screening latency in-process: `Screener.screen` p50/p95 beside Presidio alone on the same texts.

Texts of 1 KB and 10 KB, clean (the Python reference's prose) and PII-dense (a finding every
~60 characters: e-mail, phone, card, IBAN, SSN, IP), screened on the `input` stage with the
default policy (pii, secrets, injection). "Presidio alone" is the same `AnalyzerEngine` the
`pii` detector uses, called directly with the same entity list: the difference is the
pipeline's own work (normalisation, secrets and injection rules, offset mapping, verdict,
redaction). Then the injection layers' share: the default `input` stage beside the same
stage without `injection` and `injection_classifier`, alternated in the same run. One
`code`-stage row shows NeMo's Colang runtime cost. HTTP is measured by bench_screen.

    python -m tests.bench guards      (or: python -m tests.bench.bench_guards)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

from guards import GuardOptions, Screener, ScreeningConfig, Stage, StageConfig
from guards.pii import PATTERN_ENTITIES
from guards.presidio_engines import pii_analyzer
from tests.bench._stats import summary

__all__ = ["run", "texts"]

ROUNDS = {1024: 200, 10240: 40}


def _clean(size: int) -> str:
    from pydoc_data.topics import topics

    prose = " ".join(topics[name] for name in sorted(topics))
    return prose[:size]


def _dense(size: int) -> str:
    rng = random.Random(5)
    pieces: list[Callable[[], str]] = [
        lambda: f"Mail {rng.choice(['ann', 'bob', 'eve'])}{rng.randint(1, 99)}@example.com.",
        lambda: f"Phone: +1 415 555 {rng.randint(1000, 9999)}.",
        lambda: "Card 4111 1111 1111 1111 on file.",
        lambda: "IBAN GB82 WEST 1234 5698 7654 32.",
        lambda: f"SSN 536-90-{rng.randint(1000, 9999)}.",
        lambda: f"From 203.0.113.{rng.randint(1, 254)} today.",
    ]
    out = ""
    while len(out) < size:
        out += rng.choice(pieces)() + " "
    return out[:size]


def texts() -> dict[str, str]:
    """The benchmark texts by name."""
    return {
        f"{kind} {size // 1024} KB": make(size)
        for size in ROUNDS
        for kind, make in (("clean", _clean), ("pii-dense", _dense))
    }


def _time_pair(
    first: Callable[[], object], second: Callable[[], object], rounds: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """p50/p95 of two calls, alternated so both see the same machine load."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        for call, samples in ((first, a), (second, b)):
            started = time.perf_counter()
            call()
            samples.append(time.perf_counter() - started)
    return summary(a), summary(b)


def _screening(
    loop: asyncio.AbstractEventLoop, screener: Screener, text: str, config: ScreeningConfig
) -> Callable[[], object]:
    """A call that screens `text` on the `input` stage under `config`."""

    def call() -> object:
        return loop.run_until_complete(screener.screen(text, Stage.INPUT, config, tenant="b"))

    return call


def run() -> list[tuple[str, float]]:
    """Measure and print; returns (metric name, milliseconds) pairs."""
    screener = Screener(GuardOptions(hash_secret="benchmark-only-secret"))
    screener.warm_up()
    analyzer = pii_analyzer(None)
    config = ScreeningConfig()
    loop = asyncio.new_event_loop()
    results: list[tuple[str, float]] = []
    print(
        f"  {'text':16s} {'screen p50':>10s} {'p95':>8s} {'presidio p50':>12s} {'p95':>8s}"
        f" {'ratio':>6s}"
    )
    try:
        for name, text in texts().items():
            rounds = ROUNDS[1024 if name.endswith(" 1 KB") else 10240]

            screen = _screening(loop, screener, text, config)

            def presidio(text: str = text) -> object:
                return analyzer.analyze(text, language="en", entities=list(PATTERN_ENTITIES))

            screen()
            (s50, s95), (p50, p95) = _time_pair(screen, presidio, rounds)
            print(f"  {name:16s} {s50:10.2f} {s95:8.2f} {p50:12.2f} {p95:8.2f} {s50 / p50:6.2f}")
            results += [
                (f"screen input {name} p50 ms", s50),
                (f"screen input {name} p95 ms", s95),
                (f"presidio alone {name} p50 ms", p50),
                (f"presidio alone {name} p95 ms", p95),
            ]
        without = ScreeningConfig(input=StageConfig(detectors=["pii", "secrets"]))
        print(f"  {'text':16s} {'default p50':>11s} {'no injection layers p50':>24s} {'ratio':>6s}")
        for name, text in texts().items():
            rounds = ROUNDS[1024 if name.endswith(" 1 KB") else 10240]
            (f50, _f95), (b50, _b95) = _time_pair(
                _screening(loop, screener, text, config),
                _screening(loop, screener, text, without),
                rounds,
            )
            print(f"  {name:16s} {f50:11.2f} {b50:24.2f} {f50 / b50:6.2f}")
            results.append((f"screen input {name} without injection layers p50 ms", b50))
        code = _clean(1024).replace(". ", ".\nx = 1\n")

        def screen_code() -> object:
            return loop.run_until_complete(screener.screen(code, Stage.CODE, config, tenant="b"))

        (c50, c95), _ = _time_pair(screen_code, lambda: None, 50)
        print(f"  code stage 1 KB (secrets + NeMo rails): p50 {c50:.2f} ms, p95 {c95:.2f} ms")
        results += [("screen code 1 KB p50 ms", c50), ("screen code 1 KB p95 ms", c95)]
    finally:
        loop.close()
    return results


if __name__ == "__main__":
    run()
