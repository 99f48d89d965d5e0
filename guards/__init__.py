"""Screening: normalisation, PII (Presidio), secrets, injection heuristics, NeMo Guardrails rails.

The service builds one `Screener(GuardOptions(...))` and calls
`await screener.screen(text, stage, policy.screening, tenant=...)`; a policy's `screening`
section is a `ScreeningConfig`. Importing this package loads neither Presidio nor NeMo.
"""

from __future__ import annotations

import guards._env  # noqa: F401  (offline settings before any screening library loads)
from guards.base import (
    Action,
    Detection,
    Detector,
    Finding,
    Operator,
    ScanRequest,
    ScreenResult,
    Stage,
    SyncDetector,
)
from guards.config import NemoConfig, ScreeningConfig, StageConfig
from guards.options import GuardOptions, NemoLLM
from guards.screener import Screener

__all__ = [
    "Action",
    "Detection",
    "Detector",
    "Finding",
    "GuardOptions",
    "NemoConfig",
    "NemoLLM",
    "Operator",
    "ScanRequest",
    "ScreenResult",
    "ScreeningConfig",
    "Screener",
    "Stage",
    "StageConfig",
    "SyncDetector",
]
