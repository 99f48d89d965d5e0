"""Skip a test of a second-wave endpoint until the service has it (DESIGN.md, second wave).

A feature counts as present when the service's OpenAPI document shows it: its route
(sessions, executions), `results` in the execute answer (rich results), or
`application/x-ndjson` among /execute's answers (streaming). With
`CLIENT_TESTS_REQUIRE_SECOND_WAVE=1` a missing feature fails its tests instead of skipping them.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import httpx
import pytest

from tests.helpers import LiveServer

__all__ = ["require"]


@functools.cache
def _openapi(url: str) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{url}/openapi.json", timeout=30).json()
    return document


def _has(url: str, feature: str) -> bool:
    document = _openapi(url)
    paths = document.get("paths", {})
    if feature in ("sessions", "executions"):
        return f"/{feature}" in paths
    if feature == "rich results":
        schema = document.get("components", {}).get("schemas", {}).get("ExecuteResponse", {})
        return "results" in schema.get("properties", {})
    if feature == "streaming":
        answers = paths.get("/execute", {}).get("post", {}).get("responses", {})
        return any("application/x-ndjson" in a.get("content", {}) for a in answers.values())
    raise ValueError(f"unknown feature {feature!r}")


def require(live: LiveServer, *features: str) -> None:
    """Skip (or, when required, fail) unless the service has every one of `features`."""
    missing = [f for f in features if not _has(live.url, f)]
    if not missing:
        return
    message = f"waiting for the server: no {', '.join(missing)} in its OpenAPI document yet"
    if os.environ.get("CLIENT_TESTS_REQUIRE_SECOND_WAVE") == "1":
        pytest.fail(message)
    pytest.skip(message)
