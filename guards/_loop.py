"""Building NeMo's `LLMRails` with an event loop running, inside or outside of one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

__all__ = ["in_a_loop"]


def in_a_loop(build: Callable[[], Any]) -> Any:
    """Call `build` with an event loop running.

    `LLMRails()` asks for the current event loop and, outside one, creates a loop that it
    never closes; inside a running loop it just uses that one.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:

        async def run() -> Any:
            return build()

        return asyncio.run(run())
    return build()
