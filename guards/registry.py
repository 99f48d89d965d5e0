"""Detectors by the names a policy uses; the only place a detector is registered.

A policy may name only `guards.config.DETECTOR_NAMES` (a test holds that set and this map
equal), so the policy model needs no import of the detectors. Nothing is discovered by
scanning modules or directories.
"""

from __future__ import annotations

from guards.base import Detector
from guards.detect_secrets_check import DetectSecretsDetector
from guards.injection import InjectionDetector
from guards.injection_classifier import InjectionClassifier
from guards.nemo import NemoDetector
from guards.pii import PiiDetector
from guards.secrets import SecretsDetector

__all__ = ["DETECTORS"]

DETECTORS: dict[str, type[Detector]] = {
    PiiDetector.name: PiiDetector,
    SecretsDetector.name: SecretsDetector,
    InjectionDetector.name: InjectionDetector,
    InjectionClassifier.name: InjectionClassifier,
    NemoDetector.name: NemoDetector,
    DetectSecretsDetector.name: DetectSecretsDetector,
}
