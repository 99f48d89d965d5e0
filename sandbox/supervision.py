"""What every backend does while its sandbox runs, and how it judges the outcome.

A `Watch` reads stdout and stderr as they are produced (capped), takes a runner's records out of
stdout (`sandbox.runner.protocol`), polls the sandbox's cgroup for CPU time and the process
count, and records the first limit passed; the backend kills the sandbox when `stop` is set.
`Watch.result` then classifies the run by the contract in `sandbox.base`, from the same cgroup
counters whatever the backend, and from the runner's report of a refused fork: the process
count is only sampled, and a fork bomb that dies at its limit can fall between two samples.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

import structlog

from sandbox.base import ExecutionResult, Limits, OutputSink, Status
from sandbox.cgroup import CgroupUsage, SandboxCgroup
from sandbox.output import CappedOutput, Splitter, decode_output

__all__ = ["HOST_BASELINE_PROCS", "KILL_GRACE_S", "POLL_S", "Watch", "classify"]

log = structlog.get_logger(__name__)

POLL_S = 0.01
# A fork bomb hovers at its process limit only while its processes fail to fork and exit, and
# the host's count is sampled: once the count nears the limit it is read every 2 ms (at 10 ms
# one bomb in fifteen ended as a plain `error` on a loaded 2-core host).
POLL_NEAR_LIMIT_S = 0.002
NEAR_LIMIT = 0.75
KILL_GRACE_S = 3.0
# Host processes of a sandbox besides one per process of the code: the gofer, the sentry and the
# ptrace stub master (a one-process program shows 4). Measured with `cgroup.procs` on these
# hosts (under Docker, the shell that execs the program may leave one more stub).
HOST_BASELINE_PROCS = 3


def _follow(
    sink: OutputSink | None, stream: Literal["stdout", "stderr"]
) -> Callable[[bytes], Awaitable[None]] | None:
    if sink is None:
        return None

    async def follow(chunk: bytes) -> None:
        await sink(stream, chunk)

    return follow


class Watch:
    """The limits watched while one sandbox runs; `stop` is set at the first one passed."""

    def __init__(
        self, limits: Limits, cgroup: SandboxCgroup, on_output: OutputSink | None = None
    ) -> None:
        self.limits = limits
        self.cgroup = cgroup
        self.reasons: list[str] = []
        self.stop = asyncio.Event()
        self.peak_procs = 0
        self.forks_refused = False
        self.runner_errors: list[str] = []
        self.out = CappedOutput(
            limits.output_bytes, lambda: self.trigger("output"), _follow(on_output, "stdout")
        )
        self.err = CappedOutput(
            limits.output_bytes, lambda: self.trigger("output"), _follow(on_output, "stderr")
        )
        self.started = time.monotonic()
        self._io: list[asyncio.Task[Any]] = []
        self._background: list[asyncio.Task[Any]] = []

    def trigger(self, reason: str) -> None:
        """Record why the sandbox must stop (the first reason wins) and ask for the kill."""
        if not self.reasons:
            self.reasons.append(reason)
        self.stop.set()

    def on_record(self, record: dict[str, Any]) -> None:
        """A runner's record: a fork refused at the process limit, or the runner's own failure
        (records about the code's own run; a forged one can only misreport that run)."""
        if record.get("type") == "limit" and record.get("limit") == "processes":
            self.forks_refused = True
        elif record.get("type") == "error":
            self.runner_errors.append("runner: " + str(record.get("detail", ""))[:500])

    def start(
        self,
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        *more_io: Coroutine[Any, Any, None],
        splitter: Splitter | None = None,
    ) -> None:
        """Start reading the output (stdout through `splitter`, when the program is a runner;
        any other I/O, like feeding stdin) and the polling."""
        self._io = [
            asyncio.create_task(self.out.pump(stdout, splitter)),
            asyncio.create_task(self.err.pump(stderr)),
            *(asyncio.create_task(c) for c in more_io),
        ]
        self._background = [asyncio.create_task(self._poll())]

    async def _poll(self) -> None:
        near = HOST_BASELINE_PROCS + NEAR_LIMIT * self.limits.max_processes
        while True:
            count = self.cgroup.process_count()
            self.peak_procs = max(self.peak_procs, count)
            if self.cgroup.cpu_ns() > self.limits.cpu_s * 1e9:
                self.trigger("cpu")
            await asyncio.sleep(POLL_NEAR_LIMIT_S if count >= near else POLL_S)

    async def until_done(self, done: asyncio.Future[Any]) -> bool:
        """Wait for `done` (the sandbox's exit), a limit, or the wall clock. True when the
        sandbox ended on its own; otherwise the reason is recorded and it must be killed."""
        stopper = asyncio.create_task(self.stop.wait())
        self._background.append(stopper)
        await asyncio.wait(
            {done, stopper}, timeout=self.limits.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if not done.done():
            self.trigger("timeout")
            return False
        return True

    async def drain(self) -> None:
        """Let the output readers reach the end of their streams (bounded)."""
        await asyncio.wait_for(asyncio.gather(*self._io, return_exceptions=True), KILL_GRACE_S)

    def cancel(self) -> None:
        """Stop reading and polling."""
        for task in (*self._io, *self._background):
            task.cancel()

    def result(
        self,
        exit_code: int | None,
        usage: CgroupUsage,
        *,
        extra_processes: int = 0,
        oom: bool = False,
        runtime_errors: list[str] | None = None,
        backend: str,
    ) -> ExecutionResult:
        """The classified outcome; `extra_processes` are the service's own (the egress
        forwarder), `oom` an OOM kill the backend saw itself besides the cgroup's count."""
        errors = [*self.runner_errors, *(runtime_errors or [])]
        code_procs = self.peak_procs - HOST_BASELINE_PROCS - extra_processes
        pids_hit = (
            self.forks_refused or usage.pids_refused > 0 or code_procs >= self.limits.max_processes
        )
        status, detail = classify(
            self.limits,
            self.reasons,
            exit_code,
            oom=oom or usage.oom_kills > 0,
            pids_hit=pids_hit,
            runtime_errors=errors,
        )
        wall_ms = int((time.monotonic() - self.started) * 1000)
        if status is Status.SANDBOX_ERROR:
            log.error("sandbox.runtime_error", errors=errors[-3:], backend=backend)
        log.debug(
            "sandbox.finished",
            status=status.value,
            peak_procs=self.peak_procs,
            wall_ms=wall_ms,
            backend=backend,
        )
        stdout, stdout_b64 = decode_output(self.out.data, truncated=self.out.truncated)
        stderr, stderr_b64 = decode_output(self.err.data, truncated=self.err.truncated)
        return ExecutionResult(
            status=status,
            exit_code=None if status is Status.SANDBOX_ERROR else exit_code,
            stdout=stdout,
            stderr=stderr,
            stdout_truncated=self.out.truncated,
            stderr_truncated=self.err.truncated,
            stdout_base64=stdout_b64,
            stderr_base64=stderr_b64,
            wall_ms=wall_ms,
            cpu_ms=usage.cpu_ns // 1_000_000,
            peak_memory_bytes=usage.peak_memory_bytes,
            detail=detail,
        )


def classify(
    limits: Limits,
    reasons: list[str],
    exit_code: int | None,
    *,
    oom: bool,
    pids_hit: bool,
    runtime_errors: list[str],
) -> tuple[Status, str | None]:
    """Map what happened to one status of the contract, most specific cause first."""
    reason = reasons[0] if reasons else None
    if reason == "output":
        return Status.OUTPUT_LIMIT, "output passed its cap; sandbox killed"
    # A fork bomb reaches the process limit first, then often exhausts memory with what it has.
    if pids_hit and (oom or reason is not None or exit_code != 0):
        return Status.PIDS_LIMIT, f"process limit of {limits.max_processes} reached"
    if oom:
        return Status.MEMORY_LIMIT, f"memory limit of {limits.memory_mb} MiB reached"
    if reason == "timeout":
        return Status.TIMEOUT, f"wall-clock limit of {limits.timeout_s:g} s reached; sandbox killed"
    if reason == "cpu":
        return Status.TIMEOUT, f"CPU-time limit of {limits.cpu_s:g} s reached; sandbox killed"
    if exit_code == 0:
        return Status.OK, None
    if runtime_errors:
        return Status.SANDBOX_ERROR, "the sandbox runtime failed: " + runtime_errors[-1]
    return Status.ERROR, f"exited with code {exit_code}"
