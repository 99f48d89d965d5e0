"""The two halves every execution path shares (`/execute`, a session's execute, `/executions`):

    admit     the policy's limits and sizes -> the store writable -> the daily quotas and the
              host's CPU breaker -> the code screened (everything that can refuse the request
              happens here, before any answer starts) -> a `Job`
    conclude  run (unless the code was blocked; the run's `cpu_ms` is charged to the quotas) ->
              the output screened -> one audit record -> the answer

A `Job` is data, so `conclude` runs wherever the sandbox is: in this process, or on the worker
the queue hands it to (an API node admits, a worker concludes; see `relay` and `carry`). It
takes the run step as a function, so a fresh sandbox and a session's interpreter differ only
there; with `events`, output is streamed as it is produced (see `stream`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from guards import Stage
from sandbox.base import ExecutionResult, OutputSink
from sandgate.audit.auditor import Auditor
from sandgate.audit.errors import AuditUnavailable
from sandgate.errors import StoreUnavailable
from sandgate.models import ExecuteRequest, ExecuteResponse, ExecutionStatus, PolicyRef
from sandgate.pipeline.admission import admit_execution
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.job import Job
from sandgate.pipeline.outcome import answer, code_inputs, details, job_files, output_texts
from sandgate.pipeline.screening import Screened, screen_texts, strongest
from sandgate.pipeline.stream import Events
from sandgate.policy.loader import ResolvedPolicy
from sandgate.services import Services

__all__ = ["Run", "admit", "conclude", "events_for", "persist", "record"]

log = structlog.get_logger(__name__)
Run = Callable[[Job, OutputSink | None], Awaitable[ExecutionResult]]


async def admit(
    services: Services,
    caller: Caller,
    body: ExecuteRequest,
    resolved: ResolvedPolicy,
    *,
    session_id: str | None = None,
) -> Job:
    """Refuse what the policy does not allow, check the store, screen the code and files."""
    limits = admit_execution(body, resolved)
    await services.auditor.ensure_writable()
    charge = await services.budgets.admit_execution(caller.key, services.policies.current)
    code = await screen_texts(
        services.screener,
        code_inputs(body),
        Stage.CODE,
        resolved.policy.screening,
        tenant=caller.key.tenant,
        metrics=services.metrics,
    )
    policy = resolved.policy
    return Job(
        execution_id=uuid.uuid4().hex,
        request_id=caller.request_id,
        client=caller.client,
        key=caller.key,
        policy=PolicyRef(name=resolved.name, hash=resolved.hash),
        screening=policy.screening,
        caps=policy.limits,
        audit_content=policy.audit.content,
        code_screening=code.stage,
        code_excerpts=code.excerpts(policy.audit.content),
        charge=charge,
        code=code.shown("code"),
        language=body.language,
        image=body.image,
        stdin=body.stdin,
        files=job_files(body, code),
        outputs=list(body.outputs),
        limits=limits,
        egress=policy.network.egress_spec(),
        session_id=session_id,
    )


def events_for(services: Services, job: Job) -> Events:
    """The event stream of one execution, screening output as its policy says."""

    async def screen(text: str) -> Any:
        return await services.screener.screen(
            text, Stage.OUTPUT, job.screening, tenant=job.key.tenant
        )

    return Events(screen)


async def persist(write: Callable[[], Awaitable[object]], patience_s: float) -> None:
    """`write`, retried while its store is down for up to `patience_s` (then it raises)."""
    retrying = AsyncRetrying(
        retry=retry_if_exception_type((AuditUnavailable, StoreUnavailable)),
        wait=wait_exponential(multiplier=0.1, max=2),
        stop=stop_after_delay(patience_s),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            await write()


async def conclude(
    services: Services,
    job: Job,
    run: Run,
    *,
    events: Events | None = None,
    patience_s: float = 0.0,
) -> ExecuteResponse:
    """Run (unless blocked), charge, screen the output, record, answer. The charge and the
    record are retried while their store is down for `patience_s` (a worker waits for ever:
    what ran must be recorded)."""
    result: ExecutionResult | None = None
    output: Screened | None = None
    if job.blocked:
        services.metrics.executions.labels(ExecutionStatus.BLOCKED.value).inc()
    else:
        result = await run(job, events.sink if events else None)
        await _charge(services, job, result.cpu_ms, patience_s)
        if events is not None:
            await events.finish_output()
        output = await screen_texts(
            services.screener,
            output_texts(result),
            Stage.OUTPUT,
            job.screening,
            tenant=job.key.tenant,
            metrics=services.metrics,
        )
    response = answer(job, result, output)
    await record(services.auditor, job, response, output, patience_s=patience_s)
    return response


async def _charge(services: Services, job: Job, cpu_ms: int, patience_s: float) -> None:
    """Charge the run to the quotas; a charge the usage store never takes is logged, not
    raised: the run happened and its record must still be written."""
    try:
        await persist(
            lambda: services.budgets.charge_execution(job.key, cpu_ms, job.charge), patience_s
        )
    except StoreUnavailable as exc:
        log.error("usage.charge_lost", execution_id=job.execution_id, error=exc.message)


async def record(
    auditor: Auditor,
    job: Job,
    response: ExecuteResponse,
    output: Screened | None = None,
    *,
    patience_s: float = 0.0,
) -> None:
    """Commit the execution's one record; AuditUnavailable if the store stays down."""
    keep = job.audit_content
    event = Auditor.event(
        job.action,
        key=job.key,
        request_id=job.request_id,
        client=job.client,
        policy=job.policy,
        verdict=strongest(*response.screening.values()).value,
        status=response.status.value,
        content=job.code_excerpts | (output.excerpts(keep) if output else {}),
        details=details(job, response),
    )
    await persist(lambda: auditor.record(event), patience_s)
