"""The screening contract: stages, actions, findings, results, and the `Detector` interface.

A detector sees the *normalised* text (see `guards.normalise`) and reports `Detection`s with
offsets into it; the pipeline maps them back to the text as sent, applies the stage's
thresholds and actions, and turns them into `Finding`s. Verdicts order as
`allow` < `redact` < `block`: the strongest action among the findings wins.

A detector must not log the text it is given, and may raise: the pipeline turns any
exception into a `block` (fail closed) naming the detector, never the text.
"""

from __future__ import annotations

import abc
import asyncio
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from guards.config import ScreeningConfig, StageConfig
from guards.kinds import Action, Operator, Stage
from guards.normalise import Normalised
from guards.options import GuardOptions

__all__ = [
    "Action",
    "Detection",
    "Detector",
    "Finding",
    "Operator",
    "ScanRequest",
    "ScreenResult",
    "Stage",
    "SyncDetector",
]


@dataclass(frozen=True, slots=True)
class Detection:
    """A detector's raw hit: offsets into the normalised text it was given."""

    type: str
    start: int
    end: int
    score: float
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class ScanRequest:
    """What a detector is asked to scan: normalised text and the policy in force.

    `norm` is the whole normalisation (the text as sent and the offset map), for a detector
    that must also look at what was sent; `None` when the text was given already folded.
    """

    text: str
    stage: Stage
    stage_config: StageConfig
    config: ScreeningConfig
    norm: Normalised | None = None


class Finding(BaseModel):
    """One thing found in a text, with the action the policy applies to it."""

    model_config = ConfigDict(frozen=True)

    detector: str = Field(description="Name of the detector that found it.")
    type: str = Field(description="Entity or finding type, e.g. `CREDIT_CARD`, `PROMPT_INJECTION`.")
    start: int = Field(description="Start offset (code points) in the text as sent.")
    end: int = Field(description="End offset (exclusive, code points) in the text as sent.")
    score: float = Field(description="Detector confidence, 0 to 1.")
    action: Action = Field(description="Action the stage's policy applies to this finding.")
    norm_start: int = Field(description="Start offset in the normalised text the detector saw.")
    norm_end: int = Field(description="End offset in the normalised text the detector saw.")
    rule: str | None = Field(None, description="Recognizer or rule that fired, when known.")


class ScreenResult(BaseModel):
    """The outcome of screening one text at one stage."""

    verdict: Action = Field(description="Strongest action among the findings; `allow` if none.")
    findings: list[Finding] = Field(description="Findings at or above their score thresholds.")
    text: str = Field(description="Redacted text when the verdict is `redact`, else as sent.")
    redacted_text: str = Field(
        description="The text with every `redact` or `block` finding replaced, whatever the "
        "verdict: what an audit record may hold."
    )
    latency_ms: float = Field(description="Wall time of the screening, milliseconds.")
    errors: list[str] = Field(
        default_factory=list,
        description="Detectors that failed (the verdict is then `block`); never holds the text.",
    )


class Detector(abc.ABC):
    """Finds typed spans in normalised text; one instance serves every request and policy.

    `detect` must be safe to call concurrently. Per-policy state (rules a policy adds) is
    derived from `request.config` and cached by the detector. `entities` lists the types it
    can report with the current options; `warm_up` loads anything heavy ahead of traffic.
    """

    name: ClassVar[str]

    def __init__(self, options: GuardOptions) -> None:
        self.options = options

    @abc.abstractmethod
    def entities(self) -> list[str]:
        """Finding types this detector can report with the current options."""

    def warm_up(self) -> None:  # noqa: B027 - optional hook, a no-op is the right default
        """Load models and compile rules before the first request."""

    @abc.abstractmethod
    async def detect(self, request: ScanRequest) -> list[Detection]:
        """Scan `request.text` and return detections with offsets into it."""


class SyncDetector(Detector):
    """A CPU-bound detector: runs inline for short texts, in a worker thread for long ones.

    A thread hop costs ~0.1 ms, more than scanning a short text, so only texts longer than
    `GuardOptions.offload_chars` leave the event loop.
    """

    @abc.abstractmethod
    def scan(self, request: ScanRequest) -> list[Detection]:
        """Scan synchronously; same contract as `detect`."""

    async def detect(self, request: ScanRequest) -> list[Detection]:
        """Run `scan`, off the event loop when the text is long."""
        if len(request.text) > self.options.offload_chars:
            return await asyncio.to_thread(self.scan, request)
        return self.scan(request)
