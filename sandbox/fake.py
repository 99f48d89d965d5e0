"""A scripted backend for unit tests of the logic above the sandbox (routing, screening, errors).

It runs nothing: `run` records the spec and answers what the test scripted, and a fake session
answers each execution as scripted, counting them and keeping written files in memory. Tests
that claim anything about isolation, limits or state kept between calls use the real backends.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from sandbox.base import (
    ExecutionResult,
    ExecutionSpec,
    Limits,
    OutputSink,
    SandboxBackend,
    SandboxSession,
    SandboxUnavailable,
    SessionSpec,
    Status,
)

__all__ = ["FakeBackend", "FakeSession"]

SessionAnswer = Callable[[str], ExecutionResult | Awaitable[ExecutionResult]]


class FakeSession(SandboxSession):
    """Answers each execution with `answer(code)`; `end(reason)` plays the sandbox dying."""

    def __init__(self, spec: SessionSpec, answer: SessionAnswer) -> None:
        self.session_id = spec.session_id
        self.spec = spec
        self.answer = answer
        self.codes: list[str] = []
        self.files: dict[str, bytes] = {}
        self.closed = False
        self._ended: str | None = None

    @property
    def ended(self) -> str | None:
        """Why it ended, once `end` or `close` was called."""
        return self._ended

    def end(self, reason: str) -> None:
        """Make the session's sandbox gone, as a memory kill would."""
        self._ended = reason

    async def execute(
        self,
        code: str,
        *,
        limits: Limits,
        stdin: str | None = None,
        outputs: tuple[str, ...] = (),
        on_output: OutputSink | None = None,
    ) -> ExecutionResult:
        """The scripted answer, numbered."""
        self._alive()
        self.codes.append(code)
        answered = self.answer(code)
        result = await answered if inspect.isawaitable(answered) else answered
        if on_output is not None and result.stdout:
            await on_output("stdout", result.stdout.encode())
        return result.model_copy(update={"execution_count": len(self.codes)})

    async def write_file(self, path: str, data: bytes) -> None:
        """Kept in memory."""
        self._alive()
        self.files[path] = data

    async def read_file(self, path: str, max_bytes: int) -> bytes:
        """What was written."""
        self._alive()
        if path not in self.files:
            raise FileNotFoundError(path)
        if len(self.files[path]) > max_bytes:
            raise ValueError(f"{path} is larger than {max_bytes} bytes")
        return self.files[path]

    async def close(self) -> None:
        """Mark it gone."""
        self.closed = True
        self._ended = self._ended or "deleted"


class FakeBackend(SandboxBackend):
    """Answers every run with `answer(spec)`; `unavailable` makes it refuse like a dead daemon."""

    name = "fake"

    def __init__(
        self,
        answer: Callable[[ExecutionSpec], ExecutionResult] | None = None,
        *,
        unavailable: str | None = None,
        session_answer: SessionAnswer | None = None,
    ) -> None:
        self.answer = answer or (lambda _spec: ExecutionResult(status=Status.OK, exit_code=0))
        self.unavailable = unavailable
        self.runs: list[ExecutionSpec] = []
        self.session_answer = session_answer or (
            lambda _code: ExecutionResult(status=Status.OK, exit_code=0)
        )
        self.sessions: list[FakeSession] = []

    async def run(
        self, spec: ExecutionSpec, on_output: OutputSink | None = None
    ) -> ExecutionResult:
        """Record `spec`, then answer as scripted (its stdout also goes to `on_output`)."""
        if self.unavailable is not None:
            raise SandboxUnavailable(self.unavailable)
        self.runs.append(spec)
        result = self.answer(spec)
        if on_output is not None and result.stdout:
            await on_output("stdout", result.stdout.encode())
        return result

    async def start_session(self, spec: SessionSpec) -> SandboxSession:
        """A fake session answering as scripted."""
        if self.unavailable is not None:
            raise SandboxUnavailable(self.unavailable)
        self.sessions.append(FakeSession(spec, self.session_answer))
        return self.sessions[-1]

    def checks(self) -> dict[str, str | None]:
        """Ready unless scripted as unavailable."""
        return {"fake": self.unavailable}

    def reap(self) -> int:
        """Nothing to reap."""
        return 0

    def leftovers(self) -> list[str]:
        """Nothing is ever left."""
        return []
