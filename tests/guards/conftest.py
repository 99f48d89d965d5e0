"""Fixtures: one real, warmed `Screener` for the whole session, and a helper to call it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from guards import GuardOptions, Screener, ScreeningConfig, ScreenResult, Stage

Screen = Callable[..., ScreenResult]


@pytest.fixture(scope="session")
def screener() -> Screener:
    """The real pipeline: Presidio, the shipped rules and NeMo, loaded once."""
    instance = Screener(GuardOptions(hash_secret="test-hash-secret-0123456789"))
    instance.warm_up()
    return instance


@pytest.fixture(scope="session")
def screen(screener: Screener) -> Screen:
    """Screen a text synchronously: `screen(text, stage="input", config=None, tenant="t1")`."""

    def run(
        text: str,
        stage: Stage | str = Stage.INPUT,
        config: ScreeningConfig | None = None,
        tenant: str = "t1",
    ) -> ScreenResult:
        coro = screener.screen(text, stage, config or ScreeningConfig(), tenant=tenant)
        return asyncio.run(coro)

    return run
