"""The screening step every pipeline shares: the texts of one request screened at one stage.

`/execute` screens its code and files at stage `code` before any sandbox starts, and the
program's stdout and stderr at stage `output` afterwards; `/screen` screens one text. Each
finding names its `source` (`code`, `file:<path>`, `stdout`, `stderr`, `text`), and the stage's
verdict is the strongest of its texts' verdicts (`block` > `redact` > `allow`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from guards import Action, Finding, Screener, ScreeningConfig, ScreenResult, Stage
from sandgate.audit.auditor import Content, excerpt
from sandgate.metrics import Metrics
from sandgate.tracing import span

__all__ = [
    "AUDITED_FINDINGS",
    "Screened",
    "SourcedFinding",
    "StageScreening",
    "screen_texts",
    "strongest",
]

# Findings an audit record lists one by one per stage; the rest are counted by type.
AUDITED_FINDINGS = 100


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

    def audited(self) -> dict[str, Any]:
        """What a record keeps: the verdict, the first findings, the rest counted by type."""
        listed = self.findings[:AUDITED_FINDINGS]
        more = Counter(f.type for f in self.findings[AUDITED_FINDINGS:])
        kept: dict[str, Any] = {
            "verdict": self.verdict.value,
            "findings": [
                f.model_dump(
                    mode="json",
                    include={"detector", "type", "start", "end", "score", "action", "source"},
                )
                for f in listed
            ],
        }
        if more:
            kept["more_findings"] = dict(sorted(more.items()))
        return kept


@dataclass(frozen=True)
class Screened:
    """A stage's outcome and, per text, what goes on (redacted where the verdict says so)."""

    stage: StageScreening
    results: dict[str, ScreenResult]
    texts: dict[str, str]

    @property
    def verdict(self) -> Action:
        """The stage's verdict."""
        return self.stage.verdict

    def shown(self, name: str) -> str:
        """Text `name` as it goes on: redacted when screening said so."""
        return self.texts[name]

    def excerpts(self, content: Content) -> dict[str, str | None]:
        """What the audit record keeps of each text, per the policy's `audit.content`."""
        kept: dict[str, str | None] = {}
        for name, text in self.texts.items():
            result = self.results.get(name)
            if result is None:
                kept[name] = excerpt(text, text, clean=True, content=content)
            else:
                clean = not result.findings
                kept[name] = excerpt(text, result.redacted_text, clean=clean, content=content)
        return kept


def strongest(*stages: StageScreening) -> Action:
    """The strongest verdict among stages (`allow` when there are none)."""
    return max((s.verdict for s in stages), key=lambda a: a.rank, default=Action.ALLOW)


async def screen_texts(
    screener: Screener,
    texts: Mapping[str, str],
    stage: Stage,
    config: ScreeningConfig,
    *,
    tenant: str,
    metrics: Metrics,
) -> Screened:
    """Screen each non-empty text concurrently and count the stage's verdict."""
    names = [name for name, text in texts.items() if text]
    with span(f"screen.{stage.value}", texts=len(names)):
        results = await asyncio.gather(
            *(screener.screen(texts[name], stage, config, tenant=tenant) for name in names)
        )
    by_name = dict(zip(names, results, strict=True))
    findings = [
        SourcedFinding(**finding.model_dump(), source=name)
        for name, result in by_name.items()
        for finding in result.findings
    ]
    outcome = StageScreening(
        verdict=max((r.verdict for r in results), key=lambda a: a.rank, default=Action.ALLOW),
        findings=findings,
        latency_ms=max((r.latency_ms for r in results), default=0.0),
    )
    metrics.screenings.labels(stage.value, outcome.verdict.value).inc()
    shown = {name: by_name[name].text if name in by_name else text for name, text in texts.items()}
    return Screened(stage=outcome, results=by_name, texts=shown)
