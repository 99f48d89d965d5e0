"""Screening as the service applies it: several texts of one request screened at one stage.

`/execute` screens its code and files at stage `code` before any sandbox starts, and the
program's stdout and stderr at stage `output` afterwards; `/screen` screens one text. Each
finding names its `source` (`code`, `file:<path>`, `stdout`, `stderr`, `text`), and the stage's
verdict is the strongest of its texts' verdicts (`block` > `redact` > `allow`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from pydantic import BaseModel, Field

from guards import Action, Finding, Screener, ScreeningConfig, ScreenResult, Stage

__all__ = ["SourcedFinding", "StageScreening", "screen_texts"]


class SourcedFinding(Finding):
    """A finding, and which of the request's texts it is in (offsets are into that text)."""

    source: str = Field(description="`code`, `file:<path>`, `stdout`, `stderr` or `text`.")


class StageScreening(BaseModel):
    """One stage's outcome over all the texts screened at it."""

    verdict: Action
    findings: list[SourcedFinding] = Field(default_factory=list)
    latency_ms: float = 0.0

    def summary(self) -> str:
        """Finding types and detectors, for a `detail` line (never the text)."""
        kinds = sorted(
            {
                f"{f.type} ({f.detector}) in {f.source}"
                for f in self.findings
                if f.action is not Action.ALLOW
            }
        )
        return ", ".join(kinds[:5]) or "no findings"


async def screen_texts(
    screener: Screener,
    texts: Mapping[str, str],
    stage: Stage,
    config: ScreeningConfig,
    *,
    tenant: str,
) -> tuple[StageScreening, dict[str, ScreenResult]]:
    """Screen each non-empty text concurrently; returns the stage outcome and each result."""
    names = [name for name, text in texts.items() if text]
    results = await asyncio.gather(
        *(screener.screen(texts[name], stage, config, tenant=tenant) for name in names)
    )
    by_name = dict(zip(names, results, strict=True))
    verdict = max((r.verdict for r in results), key=lambda a: a.rank, default=Action.ALLOW)
    findings = [
        SourcedFinding(**finding.model_dump(), source=name)
        for name, result in by_name.items()
        for finding in result.findings
    ]
    latency = max((r.latency_ms for r in results), default=0.0)
    return StageScreening(verdict=verdict, findings=findings, latency_ms=latency), by_name
