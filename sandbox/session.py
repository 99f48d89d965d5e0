"""A session's sandbox on runsc: one slot whose runner runs in mode `session`, frame after frame.

The slot is started for the session (never taken from the pool: a pooled slot serves exactly
one execution) with the session's memory cap and CPU share in its cgroup for its whole life, and
its process ceiling and disk fixed at start. Each call is one frame (`execute`, `write_file`,
`read_file`, PROTOCOL.md) answered by records on stdout up to an `end` record there and one on
stderr; output and records are read as `/execute`'s are (`sandbox.supervision.Watch`), with the
per-execution caps of time, CPU (the cgroup's usage, restarted for each execution) and output.

Ending (`ended`): a wall-clock, CPU or output limit interrupts the code (SIGINT: a
KeyboardInterrupt) and the session lives on with its state, unless the code has not stopped
within `INTERRUPT_GRACE_S`: then the sandbox is destroyed (`timeout`). A memory or process limit
destroys it (`memory_limit`, `pids_limit`), and so does a sandbox that exits (`killed`) or a
call cancelled half-way (`killed`: what the interpreter was doing is unknown).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from typing import Any

import structlog

from sandbox.base import (
    ExecutionResult,
    Limits,
    MiB,
    OutputSink,
    SandboxSession,
    SessionEnded,
    SessionSpec,
    Status,
)
from sandbox.bundle import safe_relative_path
from sandbox.runner.protocol import Record, RecordSplitter, new_token, session_frame
from sandbox.slot import Slot, runtime_errors
from sandbox.supervision import Watch

__all__ = ["FILE_LIMITS", "INTERRUPT_GRACE_S", "RunscSession"]

log = structlog.get_logger(__name__)

INTERRUPT_GRACE_S = 2.0
FILE_LIMITS = Limits(timeout_s=60, cpu_s=60, output_bytes=MiB)
"""What a `write_file` or `read_file` frame may take (the runner only copies bytes)."""


class _Turn:
    """One frame's exchange: done once both streams brought their `end` record (or the
    sandbox ended); every other record goes to the watch."""

    def __init__(self, token: str, watch: Watch, exited: asyncio.Future[int | None]) -> None:
        self.watch = watch
        self.end: Record | None = None
        self._stderr_end = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.stdout = RecordSplitter(token, self._on_stdout)
        self.stderr = RecordSplitter(token, self._on_stderr)
        self._exited = exited
        exited.add_done_callback(self._finish)

    def _on_stdout(self, record: Record) -> None:
        if record.get("type") == "end":
            self.end = record
            self._check()
        else:
            self.watch.on_record(record)

    def _on_stderr(self, record: Record) -> None:
        if record.get("type") == "end":
            self._stderr_end = True
            self._check()

    def stdout_done(self) -> bool:
        """The execution's stdout is all read."""
        return self.end is not None

    def stderr_done(self) -> bool:
        """The execution's stderr is all read."""
        return self._stderr_end

    def _check(self) -> None:
        if self.end is not None and self._stderr_end:
            self._finish(None)

    def _finish(self, _: object) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        """Stop listening to the sandbox's exit."""
        self._exited.remove_done_callback(self._finish)


class RunscSession(SandboxSession):
    """A live session's slot; see the module docstring. `forget` is called once it is closed."""

    def __init__(self, slot: Slot, spec: SessionSpec, forget: Callable[[RunscSession], None]):
        self.session_id = spec.session_id
        self.slot = slot
        self.spec = spec
        self.count = 0
        self._forget = forget
        self._ended: str | None = None
        self._closed = False
        self._attempts_seen = 0
        self._lock = asyncio.Lock()

    @property
    def ended(self) -> str | None:
        """Why the sandbox is gone, or None while it lives (one that died idle: `killed`,
        or `memory_limit` if its cgroup OOM-killed it)."""
        if self._ended is None and self.slot.exited.done():
            oom = self.slot.cgroup.usage().oom_kills > 0
            self._ended = "memory_limit" if oom else "killed"
        return self._ended

    async def execute(
        self,
        code: str,
        *,
        limits: Limits,
        stdin: str | None = None,
        outputs: tuple[str, ...] = (),
        on_output: OutputSink | None = None,
    ) -> ExecutionResult:
        """Run `code` in the session's interpreter within `limits`' per-execution caps."""
        async with self._lock:
            self._alive()
            self.count += 1
            fields = {"code": code, "stdin": stdin or "", "outputs": list(outputs), "results": True}
            watch, turn = await self._exchange("execute", fields, limits, on_output)
            exited = self.slot.exited.done()
            code_rc = self.slot.exited.result() if exited else (turn.end or {}).get("exit_code")
            errors = runtime_errors(self.slot.bundle / "runsc.log") if exited else []
            result = watch.result(
                code_rc if isinstance(code_rc, int) else None,
                self.slot.cgroup.usage(),
                extra_processes=self.slot.attachment.processes,
                runtime_errors=errors,
                backend="runsc",
            )
            if result.status in (Status.MEMORY_LIMIT, Status.PIDS_LIMIT):
                await self._end(result.status.value)
            elif exited:
                await self._end(self.ended or "killed")
            elif result.detail and result.status in (Status.TIMEOUT, Status.OUTPUT_LIMIT):
                detail = result.detail.replace("sandbox killed", "the code was interrupted")
                result = result.model_copy(update={"detail": detail})
            attempts = self.slot.attachment.attempts()
            seen, self._attempts_seen = self._attempts_seen, len(attempts)
            return result.model_copy(
                update={"execution_count": self.count, "egress": attempts[seen:]}
            )

    async def write_file(self, path: str, data: bytes) -> None:
        """Write `data` to `/work/<path>` through the runner; OSError if it cannot."""
        safe_relative_path(path)
        async with self._lock:
            self._alive()
            fields = {"path": path, "base64": base64.b64encode(data).decode("ascii")}
            _, turn = await self._file_call("write_file", fields)
        if turn.end is not None and "error" in turn.end:
            raise OSError(f"cannot write {path}: {str(turn.end['error'])[:200]}")

    async def read_file(self, path: str, max_bytes: int) -> bytes:
        """The bytes of `/work/<path>`; FileNotFoundError, or ValueError past `max_bytes`."""
        safe_relative_path(path)
        async with self._lock:
            self._alive()
            watch, turn = await self._file_call("read_file", {"path": path, "max_bytes": max_bytes})
        error = (turn.end or {}).get("error")
        if error == "too_large":
            raise ValueError(f"{path} is larger than {max_bytes} bytes")
        file = watch.rich.files.get(path)
        if error is not None or file is None or file.size > max_bytes:
            raise FileNotFoundError(path)
        return base64.b64decode(file.content_base64)

    async def close(self) -> None:
        """Destroy the sandbox (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._ended = self._ended or "deleted"
        try:
            await self.slot.destroy()
        finally:
            self._forget(self)

    # -- one frame ----------------------------------------------------------------------------

    async def _file_call(self, kind: str, fields: dict[str, Any]) -> tuple[Watch, _Turn]:
        watch, turn = await self._exchange(kind, fields, FILE_LIMITS, None)
        if self.slot.exited.done() or turn.end is None:
            await self._end(self.ended or "killed")
            raise SessionEnded(self._ended or "killed")
        return watch, turn

    async def _exchange(
        self, kind: str, fields: dict[str, Any], limits: Limits, on_output: OutputSink | None
    ) -> tuple[Watch, _Turn]:
        """Send one frame, follow its output and records to its end or to a limit; a limit
        interrupts the code, and code that does not stop ends the session (`timeout`)."""
        token = new_token()
        self.slot.cgroup.reset_counters()
        watch = Watch(limits, self.slot.cgroup, on_output)
        turn = _Turn(token, watch, self.slot.exited)
        stdin, stdout, stderr = self.slot.streams()
        watch.follow(
            _send(stdin, session_frame(kind, token, **fields)),
            watch.out.pump(stdout, turn.stdout, until=turn.stdout_done),
            watch.err.pump(stderr, turn.stderr, until=turn.stderr_done),
        )
        finished = False
        try:
            if not await watch.until_done(turn.done) and not self.slot.exited.done():
                await self.slot.runtime.quiet("kill", self.slot.container, "INT")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(turn.done), INTERRUPT_GRACE_S)
                if not turn.done.done():
                    log.warning("session.interrupt_ignored", session_id=self.session_id)
                    await self._end("timeout")
            with contextlib.suppress(TimeoutError):
                await watch.drain()
            finished = True
        finally:
            watch.cancel()
            turn.close()
            if not finished:  # cancelled half-way: the interpreter's state is unknown
                await asyncio.shield(self._end("killed"))
        return watch, turn

    async def _end(self, reason: str) -> None:
        """Destroy the sandbox now; the session has ended for `reason`."""
        if self._ended is None:
            self._ended = reason
            log.info("session.sandbox_ended", session_id=self.session_id, reason=reason)
        await self.slot.kill()


async def _send(stdin: asyncio.StreamWriter, frame: bytes) -> None:
    with contextlib.suppress(ConnectionError):
        stdin.write(frame)
        await stdin.drain()
