"""One Docker sandbox from start to exit: its output streamed and capped, its wall-clock and
CPU time watched, the kill when a limit is passed (escalating when the container will not die),
and the outcome classified exactly as the runsc backend classifies its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import structlog
from docker.errors import DockerException

from sandbox.attachment import Attachment
from sandbox.base import ExecutionResult, ExecutionSpec, OutputSink, SandboxUnavailable
from sandbox.cgroup import SandboxCgroup
from sandbox.docker._client import DockerCalls
from sandbox.docker._stream import open_attach_stream
from sandbox.runner.protocol import RecordSplitter
from sandbox.supervision import KILL_GRACE_S, Watch

__all__ = ["kill", "supervise", "thaw"]

log = structlog.get_logger(__name__)


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
    token: str | None,
    on_output: OutputSink | None = None,
) -> ExecutionResult:
    """Attach, start, watch the limits, kill at the first one passed, and classify the outcome
    (the runsc backend's classification, from the same cgroup counters). `freezer` is the
    container's freezer cgroup, thawed when a kill hangs; `token` tags the records of its
    runner, if the program is one."""
    watch = Watch(spec.limits, cgroup, on_output)
    splitter = RecordSplitter(token, watch.on_record) if token else None
    # Attached before the start, so not one byte of output is missed.
    hijacked = await calls.call(
        calls.api.attach_socket, cid, params={"stdout": 1, "stderr": 1, "stream": 1}
    )
    stream = await open_attach_stream(hijacked)
    ended = asyncio.create_task(stream.demux())
    watch.start(stream.stdout, stream.stderr, splitter=splitter)
    try:
        await calls.call(calls.api.start, cid)
        if not await watch.until_done(ended):
            await kill(calls, cid, cgroup, freezer, ended)
        await watch.drain()
        exit_code = (await calls.call(calls.api.wait, cid, timeout=10))["StatusCode"]
        state = (await calls.call(calls.api.inspect_container, cid))["State"]
    finally:
        watch.cancel()
        if not ended.done():  # cancelled or the daemon failed: never leave it running
            watch.trigger("cancelled")
            await kill(calls, cid, cgroup, freezer, ended)
        stream.close()
    return watch.result(
        exit_code,
        cgroup.usage(),
        extra_processes=attachment.processes,
        oom=bool(state.get("OOMKilled")),
        runtime_errors=[state["Error"]] if state.get("Error") else [],
        backend="docker",
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
