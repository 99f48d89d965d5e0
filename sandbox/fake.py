"""A scripted backend for unit tests of the logic above the sandbox (routing, screening, errors).

It runs nothing: `run` records the spec and answers what the test scripted. Tests that claim
anything about isolation or limits use the real backends.
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.base import ExecutionResult, ExecutionSpec, SandboxBackend, SandboxUnavailable, Status

__all__ = ["FakeBackend"]


class FakeBackend(SandboxBackend):
    """Answers every run with `answer(spec)`; `unavailable` makes it refuse like a dead daemon."""

    name = "fake"

    def __init__(
        self,
        answer: Callable[[ExecutionSpec], ExecutionResult] | None = None,
        *,
        unavailable: str | None = None,
    ) -> None:
        self.answer = answer or (lambda _spec: ExecutionResult(status=Status.OK, exit_code=0))
        self.unavailable = unavailable
        self.runs: list[ExecutionSpec] = []

    async def run(self, spec: ExecutionSpec) -> ExecutionResult:
        """Record `spec`, then answer as scripted."""
        if self.unavailable is not None:
            raise SandboxUnavailable(self.unavailable)
        self.runs.append(spec)
        return self.answer(spec)

    def checks(self) -> dict[str, str | None]:
        """Ready unless scripted as unavailable."""
        return {"fake": self.unavailable}

    def reap(self) -> int:
        """Nothing to reap."""
        return 0

    def leftovers(self) -> list[str]:
        """Nothing is ever left."""
        return []
