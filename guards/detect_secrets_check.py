"""`detect_secrets`: Yelp's detect-secrets plugins (entropy plugins off) as a second opinion.

Not in any stage's default list, because it does not earn its cost: on `python -m
tests.eval.run` it found 18 of 26 fabricated provider credentials (`secrets`: 26), none that
`secrets` missed, flagged none of 493 benign code texts (nor did `secrets`), and took 5-13
times as long per KB of code as `secrets` (it scans line by line, rebuilding its filters
per line). A policy can still list it on a stage.

detect-secrets keeps its plugin settings in process-global state, so scans are serialised
by a lock, and it reports values per line: offsets are found by locating the value in its
line.
"""

from __future__ import annotations

import re
from threading import Lock
from typing import Any

from guards.base import Detection, ScanRequest, SyncDetector

__all__ = ["DetectSecretsDetector"]

_ENTROPY_PLUGINS = {"Base64HighEntropyString", "HexHighEntropyString"}
_LOCK = Lock()
_configured = False


def _configure() -> Any:
    """Enable every plugin but the entropy ones, once per process."""
    global _configured
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.core.scan import scan_line
    from detect_secrets.settings import configure_settings_from_baseline

    if not _configured:
        classes: list[type] = list(get_mapping_from_secret_type_to_class().values())
        plugins = [{"name": c.__name__} for c in classes if c.__name__ not in _ENTROPY_PLUGINS]
        configure_settings_from_baseline({"plugins_used": plugins})
        _configured = True
    return scan_line


def _type_name(secret_type: str) -> str:
    return "DS_" + re.sub(r"[^A-Z0-9]+", "_", secret_type.upper()).strip("_")


class DetectSecretsDetector(SyncDetector):
    """detect-secrets' pattern and keyword plugins, line by line."""

    name = "detect_secrets"

    def entities(self) -> list[str]:
        """Types named after detect-secrets' plugins (`DS_` + secret type)."""
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class

        mapping: dict[str, type] = dict(get_mapping_from_secret_type_to_class())
        return sorted(
            _type_name(kind) for kind, c in mapping.items() if c.__name__ not in _ENTROPY_PLUGINS
        )

    def warm_up(self) -> None:
        """Load and configure the plugins."""
        with _LOCK:
            _configure()

    def scan(self, request: ScanRequest) -> list[Detection]:
        """Scan each line and locate each reported value in it."""
        found: list[Detection] = []
        wanted = request.stage_config.entities
        offset = 0
        with _LOCK:
            scan_line = _configure()
            for line in request.text.splitlines(keepends=True):
                for secret in scan_line(line.rstrip("\r\n")):
                    kind = _type_name(secret.type)
                    at = line.find(secret.secret_value or "")
                    if secret.secret_value and at >= 0 and (wanted is None or kind in wanted):
                        end = offset + at + len(secret.secret_value)
                        found.append(Detection(kind, offset + at, end, 0.8, secret.type))
                offset += len(line)
        return found
