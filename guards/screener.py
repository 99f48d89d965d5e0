"""`Screener`: the entry point the service calls to screen one text at one stage.

The path of one text: refuse it unread if longer than the stage's `max_length`; normalise
(`guards.normalise`); run the stage's detectors concurrently; keep detections at or above
their thresholds, map their offsets back to the text as sent and give each its action; the
strongest action is the verdict; replace the findings that are not `allow`.

Fails closed: a detector that raises, returns offsets outside the text, or a redaction that
fails makes the verdict `block` with a `DETECTOR_ERROR` finding naming the detector. Only
the detector's name and the exception's class are logged, never the text or the message
(a message can quote the text).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping

import structlog
from opentelemetry import trace

from guards.base import Action, Detection, Detector, Finding, ScanRequest, ScreenResult, Stage
from guards.config import ScreeningConfig, StageConfig
from guards.normalise import Normalised, normalise
from guards.options import GuardOptions
from guards.presidio_engines import NER_ENTITIES
from guards.redaction import redact, tenant_salt
from guards.registry import DETECTORS

__all__ = ["Screener"]

log = structlog.get_logger("guards")
_tracer = trace.get_tracer("guards")  # the service's provider, when it has one

# NFKC can expand a character up to 18 times; a text may grow at most this much.
_MAX_EXPANSION = 2


class Screener:
    """Screens texts per a policy's `ScreeningConfig`; one per process, safe to share."""

    def __init__(
        self, options: GuardOptions | None = None, detectors: Mapping[str, Detector] | None = None
    ) -> None:
        self.options = options or GuardOptions()
        self._detectors: dict[str, Detector] = dict(detectors or {})
        secret = self.options.hash_secret
        if secret is None:
            log.warning("hash_secret_unset", effect="pseudonyms change when the process restarts")
            self._secret = secrets.token_bytes(32)
        else:
            self._secret = secret.get_secret_value().encode("utf-8")

    def detector(self, name: str) -> Detector:
        """The detector registered under `name`, built on first use."""
        if name not in self._detectors:
            self._detectors[name] = DETECTORS[name](self.options)
        return self._detectors[name]

    def active_entities(self) -> list[str]:
        """Every finding type some detector can report with these options."""
        return sorted({e for name in DETECTORS for e in self.detector(name).entities()})

    def entities_by_detector(self) -> dict[str, list[str]]:
        """Finding types per detector, as `/ready` shows them."""
        return {name: self.detector(name).entities() for name in DETECTORS}

    def unavailable_entities(self) -> list[str]:
        """Entity types that need a spaCy model and are not detected without one."""
        return sorted(set(NER_ENTITIES) - set(self.detector("pii").entities()))

    def warm_up(self) -> None:
        """Load Presidio, NeMo and the shipped rules now rather than on the first request."""
        for name in DETECTORS:
            self.detector(name).warm_up()

    async def screen(
        self, text: str, stage: Stage | str, config: ScreeningConfig, *, tenant: str
    ) -> ScreenResult:
        """Screen `text` at `stage` under `config`; see the module docstring for the path."""
        started = time.perf_counter()
        stage = Stage(stage)
        stage_config = config.for_stage(stage)
        if len(text) > stage_config.max_length:
            return self._too_long(text, stage_config.max_length, len(text), started)
        if len(text) > self.options.offload_chars:
            norm = await asyncio.to_thread(normalise, text)
        else:
            norm = normalise(text)
        if len(norm.text) > _MAX_EXPANSION * stage_config.max_length:
            return self._too_long(text, stage_config.max_length, len(text), started)
        request = ScanRequest(norm.text, stage, stage_config, config, norm)
        names = stage_config.detectors_for(stage)
        outcomes = await asyncio.gather(
            *(self._run(name, request) for name in names), return_exceptions=True
        )
        findings: list[Finding] = []
        errors: list[str] = []
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                findings.extend(self._findings(name, outcome, norm, stage_config))
            except Exception as exc:  # noqa: BLE001 - any failure fails closed
                log.warning("detector_failed", detector=name, error=type(exc).__name__)
                errors.append(f"{name}: {type(exc).__name__}")
                findings.append(_error_finding(name, type(exc).__name__, text, norm))
        findings.sort(key=lambda f: (f.start, f.end, f.type))
        verdict = max((f.action for f in findings), key=lambda a: a.rank, default=Action.ALLOW)
        acted = [f for f in findings if f.action is not Action.ALLOW]
        try:
            redacted = redact(text, acted, stage_config, tenant_salt(self._secret, tenant))
        except Exception as exc:  # noqa: BLE001 - fail closed, never echo the text
            log.warning("redaction_failed", error=type(exc).__name__)
            errors.append(f"redaction: {type(exc).__name__}")
            findings.append(_error_finding("redaction", type(exc).__name__, text, norm))
            verdict, redacted = Action.BLOCK, ""
        return ScreenResult(
            verdict=verdict,
            findings=findings,
            text=redacted if verdict is Action.REDACT else text,
            redacted_text=redacted,
            latency_ms=(time.perf_counter() - started) * 1000,
            errors=errors,
        )

    async def _run(self, name: str, request: ScanRequest) -> list[Detection]:
        with _tracer.start_as_current_span(f"detector.{name}"):
            return await self.detector(name).detect(request)

    @staticmethod
    def _findings(
        name: str, detections: list[Detection], norm: Normalised, config: StageConfig
    ) -> list[Finding]:
        kept = []
        for item in detections:
            if not 0 <= item.start <= item.end <= len(norm.text):
                raise ValueError("detection outside the text")
            if item.score < config.threshold_for(item.type):
                continue
            if config.entities is not None and item.type not in config.entities:
                continue
            start, end = norm.to_original(item.start, item.end)
            kept.append(
                Finding(
                    detector=name,
                    type=item.type,
                    start=start,
                    end=end,
                    score=round(item.score, 4),
                    action=config.action_for(name, item.type),
                    norm_start=item.start,
                    norm_end=item.end,
                    rule=item.rule,
                )
            )
        return kept

    @staticmethod
    def _too_long(text: str, limit: int, length: int, started: float) -> ScreenResult:
        finding = Finding(
            detector="limits",
            type="TEXT_TOO_LONG",
            start=min(limit, length),
            end=length,
            score=1.0,
            action=Action.BLOCK,
            norm_start=min(limit, length),
            norm_end=length,
            rule=f"max_length={limit}",
        )
        return ScreenResult(
            verdict=Action.BLOCK,
            findings=[finding],
            text=text,
            redacted_text="",
            latency_ms=(time.perf_counter() - started) * 1000,
        )


def _error_finding(name: str, error: str, text: str, norm: Normalised) -> Finding:
    return Finding(
        detector=name,
        type="DETECTOR_ERROR",
        start=0,
        end=len(text),
        score=1.0,
        action=Action.BLOCK,
        norm_start=0,
        norm_end=len(norm.text),
        rule=error,
    )
