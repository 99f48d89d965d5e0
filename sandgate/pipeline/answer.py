"""An execution's answer and its one audit record, built from its `Job` on whichever node ends it.

Three endings: `blocked` (screening refused the code: nothing ran), `ran` (the sandbox's
result, with its output as screening lets it go), `lost` (the worker that had started it died:
it is not run again). Each answer has exactly one `execute` record; `record` writes it, and
with `patience_s` keeps trying while the store is down, since what ran must be audited.
"""

from __future__ import annotations

from typing import Any

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from guards import Action
from sandbox.base import ExecutionResult
from sandgate.audit.auditor import Auditor
from sandgate.audit.base import AuditUnavailable
from sandgate.dispatch.base import Job
from sandgate.models import ExecuteResponse, ExecutionStatus
from sandgate.pipeline.screening import Screened, strongest

__all__ = ["blocked", "lost", "ran", "record"]


def blocked(job: Job) -> ExecuteResponse:
    """The answer when screening blocked the code: nothing ran."""
    detail = f"code blocked by screening: {job.code_screening.summary()}"
    return _empty(job, ExecutionStatus.BLOCKED, detail)


def lost(job: Job, worker: str) -> ExecuteResponse:
    """The answer when the worker running it died: it ran (or began to) and is not run again."""
    detail = f"worker lost: {worker} stopped while running this execution; it was not run again"
    return _empty(job, ExecutionStatus.SANDBOX_ERROR, detail)


def _empty(job: Job, status: ExecutionStatus, detail: str) -> ExecuteResponse:
    return ExecuteResponse(
        execution_id=job.execution_id,
        request_id=job.request_id,
        status=status,
        exit_code=None,
        stdout="",
        stderr="",
        stdout_truncated=False,
        stderr_truncated=False,
        wall_ms=0,
        cpu_ms=0,
        peak_memory_bytes=0,
        detail=detail,
        policy=job.policy,
        screening={"code": job.code_screening},
    )


def ran(job: Job, result: ExecutionResult, output: Screened) -> ExecuteResponse:
    """The sandbox's result, its output as screening lets it go: withheld on `block`,
    redacted on `redact`; the raw bytes only when screening changed nothing."""
    withheld = output.verdict is Action.BLOCK
    raw_ok = output.verdict is Action.ALLOW  # the raw bytes would carry what was replaced
    return ExecuteResponse(
        execution_id=job.execution_id,
        request_id=job.request_id,
        status=ExecutionStatus.of(result.status),
        exit_code=result.exit_code,
        stdout="" if withheld else output.shown("stdout"),
        stderr="" if withheld else output.shown("stderr"),
        stdout_truncated=result.stdout_truncated,
        stderr_truncated=result.stderr_truncated,
        stdout_base64=result.stdout_base64 if raw_ok else None,
        stderr_base64=result.stderr_base64 if raw_ok else None,
        wall_ms=result.wall_ms,
        cpu_ms=result.cpu_ms,
        peak_memory_bytes=result.peak_memory_bytes,
        detail=result.detail,
        output_withheld=withheld,
        policy=job.policy,
        egress=result.egress,
        screening={"code": job.code_screening, "output": output.stage},
    )


async def record(
    auditor: Auditor,
    job: Job,
    response: ExecuteResponse,
    output: dict[str, str | None] | None = None,
    *,
    patience_s: float = 0.0,
) -> None:
    """Commit the execution's record; AuditUnavailable if the store stays down `patience_s`."""
    event = Auditor.event(
        "execute",
        key=job.key,
        request_id=job.request_id,
        client=job.client,
        policy=job.policy,
        verdict=strongest(*response.screening.values()).value,
        status=response.status.value,
        content=job.code_excerpts | (output or {}),
        details=_details(job, response),
    )
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(AuditUnavailable),
        wait=wait_exponential(multiplier=0.1, max=2),
        stop=stop_after_delay(patience_s),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            await auditor.record(event)


def _details(job: Job, response: ExecuteResponse) -> dict[str, Any]:
    """What the record keeps beyond excerpts: outcome, resource use, findings, egress."""
    return {
        "execution_id": response.execution_id,
        "language": job.spec.language,
        "exit_code": response.exit_code,
        "detail": response.detail,
        "wall_ms": response.wall_ms,
        "cpu_ms": response.cpu_ms,
        "peak_memory_bytes": response.peak_memory_bytes,
        "stdout_truncated": response.stdout_truncated,
        "stderr_truncated": response.stderr_truncated,
        "output_withheld": response.output_withheld,
        "limits": job.spec.limits.model_dump(),
        "files": sorted(job.spec.files),
        "screening": {stage: s.audited() for stage, s in response.screening.items()},
        "egress": [a.model_dump() for a in response.egress],
    }
