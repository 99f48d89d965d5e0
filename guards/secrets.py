"""`secrets`: provider keys, tokens, private keys, JWTs and passwords, as Presidio patterns.

The recognizers live in `secrets.yaml` beside this file (Presidio's YAML recognizer shape);
a policy's `screening.secret_patterns` adds more. One analyzer is built per distinct set of
policy additions and kept in a small cache.

Most texts hold no credential, and Presidio's call costs ~0.1 ms before any pattern runs: a
text that holds none of the words every shipped pattern needs (`MARKERS`, looked up in the
lower-cased text) is not given to Presidio at all, unless the policy adds patterns.
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

__all__ = [
    "MARKERS",
    "SHIPPED_SECRETS",
    "SecretsDetector",
    "may_hold_secret",
    "shipped_recognizers",
]

SHIPPED_SECRETS = Path(__file__).with_name("secrets.yaml")
# Case-sensitive: `AKIA...` in lower case is not an AWS key (Presidio's default ignores case).
_FLAGS = regex.DOTALL | regex.MULTILINE
_CACHE_SIZE = 32
# Per shipped recognizer, lower-case strings one of which every match of it contains.
MARKERS: dict[str, tuple[str, ...]] = {
    "AWS access key id": ("akia", "asia", "abia", "acca", "a3t"),
    "AWS secret access key": ("aws",),
    "GitHub token": ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    "GitLab token": ("glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-"),
    "Slack token": ("xox", "hooks.slack.com"),
    "Stripe key": ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
    "Google API key": ("aiza",),
    "OpenAI API key": ("sk-",),
    "Anthropic API key": ("sk-ant-",),
    "Hugging Face token": ("hf_",),
    "npm and PyPI tokens": ("npm_", "pypi-"),
    "SendGrid key": ("sg.",),
    "Azure storage key": ("accountkey=",),
    "Private key block": ("-----begin",),
    "JSON web token": ("eyj",),
    "Bearer token": ("bearer", "token", "authorization"),
    "Password in a connection string": ("://", "password", "pwd"),
    "Password or secret in an assignment": ("password", "passwd", "pwd", "passphrase"),
    "Secret or token in an assignment": ("secret", "api_key", "apikey", "apikey", "access_token",
                                         "accesstoken", "auth_token", "authtoken", "private_key",
                                         "privatekey"),
    "Password in prose": ("password", "passwort", "kennwort", "passcode", "passphrase", "pin",
                          "pwd", "pw", "mot de passe", "contraseña", "senha"),
}  # fmt: skip
_ALL_MARKERS = tuple(dict.fromkeys(m for markers in MARKERS.values() for m in markers))


def may_hold_secret(text: str) -> bool:
    """Whether `text` holds a marker of some shipped recognizer (see the module docstring)."""
    lowered = text.lower()
    return any(marker in lowered for marker in _ALL_MARKERS)


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
        extra = tuple(request.config.secret_patterns)
        if not request.text or (not extra and not may_hold_secret(request.text)):
            return []
        wanted = request.stage_config.entities
        types = sorted({s.supported_entity for s in shipped_recognizers() + extra})
        entities = types if wanted is None else [t for t in types if t in wanted]
        if not entities:
            return []
        results = self._analyzer(extra).analyze(request.text, language="en", entities=entities)
        return detections(results)
