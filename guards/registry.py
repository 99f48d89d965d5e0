"""Detectors by the names a policy uses; the only place a detector is registered.

A name that is not here is a validation error in a policy (see `guards.config`). Nothing is
discovered by scanning modules or directories.
"""

from __future__ import annotations

from guards.base import Detector
from guards.detect_secrets_check import DetectSecretsDetector
from guards.injection import InjectionDetector
from guards.nemo import NemoDetector
from guards.pii import PiiDetector
from guards.secrets import SecretsDetector

__all__ = ["DETECTORS", "detector_names"]

DETECTORS: dict[str, type[Detector]] = {
    PiiDetector.name: PiiDetector,
    SecretsDetector.name: SecretsDetector,
    InjectionDetector.name: InjectionDetector,
    NemoDetector.name: NemoDetector,
    DetectSecretsDetector.name: DetectSecretsDetector,
}


def detector_names() -> frozenset[str]:
    """Every registered detector name."""
    return frozenset(DETECTORS)
