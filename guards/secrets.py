"""`secrets`: provider keys, tokens, private keys, JWTs and passwords, as Presidio patterns.

The recognizers live in `secrets.yaml` beside this file (Presidio's YAML recognizer shape);
a policy's `screening.secret_patterns` adds more. One analyzer is built per distinct set of
policy additions and kept in a small cache.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from threading import Lock
from typing import Any

import regex

from guards.base import Detection, ScanRequest, SyncDetector
from guards.presidio_engines import detections, pattern_analyzer
from guards.rules import RecognizerFile, RecognizerSpec, load_rule_file

__all__ = ["SHIPPED_SECRETS", "SecretsDetector", "shipped_recognizers"]

SHIPPED_SECRETS = Path(__file__).with_name("secrets.yaml")
# Case-sensitive: `AKIA...` in lower case is not an AWS key (Presidio's default ignores case).
_FLAGS = regex.DOTALL | regex.MULTILINE
_CACHE_SIZE = 32


@lru_cache(maxsize=1)
def shipped_recognizers() -> tuple[RecognizerSpec, ...]:
    """The recognizers of `secrets.yaml`, validated."""
    return tuple(load_rule_file(SHIPPED_SECRETS, RecognizerFile).recognizers)


class SecretsDetector(SyncDetector):
    """Credentials: AWS, GitHub, GitLab, Slack, Stripe, Google, OpenAI, Anthropic, JWT, PEM..."""

    name = "secrets"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._analyzers: OrderedDict[str, Any] = OrderedDict()
        self._lock = Lock()

    def entities(self) -> list[str]:
        """Types of the shipped recognizers (a policy's own add theirs)."""
        return sorted({spec.supported_entity for spec in shipped_recognizers()})

    def warm_up(self) -> None:
        """Build the shipped analyzer and compile its patterns."""
        self._analyzer(()).analyze("AKIA0000000000000000", language="en")

    def _analyzer(self, extra: tuple[RecognizerSpec, ...]) -> Any:
        key = "|".join(spec.model_dump_json() for spec in extra)
        with self._lock:
            if key in self._analyzers:
                self._analyzers.move_to_end(key)
                return self._analyzers[key]
        analyzer = pattern_analyzer(shipped_recognizers() + extra, _FLAGS)
        with self._lock:
            self._analyzers[key] = analyzer
            while len(self._analyzers) > _CACHE_SIZE:
                self._analyzers.popitem(last=False)
        return analyzer

    def scan(self, request: ScanRequest) -> list[Detection]:
        """Run the shipped and policy-added recognizers."""
        if not request.text:
            return []
        extra = tuple(request.config.secret_patterns)
        wanted = request.stage_config.entities
        types = sorted({s.supported_entity for s in shipped_recognizers() + extra})
        entities = types if wanted is None else [t for t in types if t in wanted]
        if not entities:
            return []
        results = self._analyzer(extra).analyze(request.text, language="en", entities=entities)
        return detections(results)
