"""One Docker sandbox from start to exit: its output streamed and capped, its wall-clock and
CPU time watched, the kill when a limit is passed (escalating when the container will not die),
and the outcome classified exactly as the runsc backend classifies its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import structlog
from docker.errors import DockerException

from sandbox._docker_client import DockerCalls
from sandbox._docker_stream import open_attach_stream
from sandbox.attachment import Attachment
from sandbox.base import ExecutionResult, ExecutionSpec, SandboxUnavailable, Status
from sandbox.cgroup import SandboxCgroup
from sandbox.output import CappedOutput, decode_output
from sandbox.runsc import HOST_BASELINE_PROCS, _classify

__all__ = ["KILL_GRACE_S", "kill", "supervise", "thaw"]

log = structlog.get_logger(__name__)

POLL_S = 0.01  # a fork bomb sits at its process limit for only tens of ms
KILL_GRACE_S = 3.0


def thaw(freezer: Path) -> None:
    """A frozen task cannot act on SIGKILL until thawed (cgroup v1 freezer)."""
    with contextlib.suppress(OSError):
        (freezer / "freezer.state").write_text("THAWED")


async def supervise(
    calls: DockerCalls,
    spec: ExecutionSpec,
    cid: str,
    cgroup: SandboxCgroup,
    attachment: Attachment,
    freezer: Path,
) -> ExecutionResult:
    """Attach, start, watch the limits, kill at the first one passed, and classify the outcome
    (the runsc backend's classification, from the same cgroup counters). `freezer` is the
    container's freezer cgroup, thawed when a kill hangs."""
    limits = spec.limits
    reasons: list[str] = []
    stop = asyncio.Event()

    def trigger(reason: str) -> None:
        if not reasons:
            reasons.append(reason)
        stop.set()

    out = CappedOutput(limits.output_bytes, lambda: trigger("output"))
    err = CappedOutput(limits.output_bytes, lambda: trigger("output"))
    # Attached before the start, so not one byte of output is missed.
    hijacked = await calls.call(
        calls.api.attach_socket, cid, params={"stdout": 1, "stderr": 1, "stream": 1}
    )
    stream = await open_attach_stream(hijacked)
    started = time.monotonic()
    peak_procs = 0

    async def monitor() -> None:
        nonlocal peak_procs
        while True:
            peak_procs = max(peak_procs, cgroup.process_count())
            if cgroup.cpu_ns() > limits.cpu_s * 1e9:
                trigger("cpu")
            await asyncio.sleep(POLL_S)

    ended = asyncio.create_task(stream.demux())
    pumps = [
        asyncio.create_task(out.pump(stream.stdout)),
        asyncio.create_task(err.pump(stream.stderr)),
    ]
    watcher = asyncio.create_task(monitor())
    stopper = asyncio.create_task(stop.wait())
    try:
        await calls.call(calls.api.start, cid)
        await asyncio.wait(
            {ended, stopper}, timeout=limits.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if not ended.done():
            trigger("timeout")
            await kill(calls, cid, cgroup, freezer, ended)
        await asyncio.wait_for(asyncio.gather(*pumps, return_exceptions=True), KILL_GRACE_S)
        exit_code = (await calls.call(calls.api.wait, cid, timeout=10))["StatusCode"]
        state = (await calls.call(calls.api.inspect_container, cid))["State"]
    finally:
        for task in (*pumps, watcher, stopper):
            task.cancel()
        if not ended.done():  # cancelled or the daemon failed: never leave it running
            trigger("cancelled")
            await kill(calls, cid, cgroup, freezer, ended)
        stream.close()
    wall_ms = int((time.monotonic() - started) * 1000)
    usage = cgroup.usage()
    runtime_errors = [state["Error"]] if state.get("Error") else []
    pids_hit = usage.pids_refused > 0 or (
        peak_procs - HOST_BASELINE_PROCS - attachment.processes >= limits.max_processes
    )
    status, detail = _classify(
        limits,
        reasons,
        exit_code,
        oom=usage.oom_kills > 0 or bool(state.get("OOMKilled")),
        pids_hit=pids_hit,
        runtime_errors=runtime_errors,
    )
    stdout, stdout_b64 = decode_output(out.data, truncated=out.truncated)
    stderr, stderr_b64 = decode_output(err.data, truncated=err.truncated)
    if status is Status.SANDBOX_ERROR:
        log.error("sandbox.runtime_error", errors=runtime_errors, backend="docker")
    log.debug("sandbox.finished", status=status.value, peak_procs=peak_procs, wall_ms=wall_ms)
    return ExecutionResult(
        status=status,
        exit_code=None if status is Status.SANDBOX_ERROR else exit_code,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=out.truncated,
        stderr_truncated=err.truncated,
        stdout_base64=stdout_b64,
        stderr_base64=stderr_b64,
        wall_ms=wall_ms,
        cpu_ms=usage.cpu_ns // 1_000_000,
        peak_memory_bytes=usage.peak_memory_bytes,
        detail=detail,
    )


async def kill(
    calls: DockerCalls, cid: str, cgroup: SandboxCgroup, freezer: Path, ended: asyncio.Task[None]
) -> None:
    """Stop the container: Docker's kill first; if it will not die (a hung runtime, a frozen
    cgroup), thaw it and SIGKILL every host process of the sandbox from its cgroup."""
    with contextlib.suppress(SandboxUnavailable, DockerException, TimeoutError):
        await asyncio.wait_for(calls.call(calls.api.kill, cid), KILL_GRACE_S)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(ended), KILL_GRACE_S)
        return
    log.warning("sandbox.docker.kill_escalated", container=cid[:12])
    thaw(freezer)
    cgroup.kill()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(ended), KILL_GRACE_S)
