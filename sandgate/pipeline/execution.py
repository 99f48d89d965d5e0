"""The two halves every execution path shares (`/execute`, a session's execute, `/executions`):

    admit     the policy's limits and sizes -> the store writable -> the daily quotas and the
              host's CPU breaker -> the code screened (everything that can refuse the request
              happens here, before any answer starts)
    conclude  run (unless the code was blocked; the run's `cpu_ms` is charged to the quotas) ->
              the output screened -> one audit record -> the answer

`conclude` takes the run step as a function, so a fresh sandbox and a session's interpreter
differ only there; with `events`, output is streamed as it is produced (see `stream`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from guards import Action, Stage
from sandbox.base import ExecutionResult, Limits, OutputSink
from sandgate.audit.auditor import Auditor
from sandgate.models import ExecuteRequest, ExecuteResponse, ExecutionStatus, PolicyRef
from sandgate.pipeline.admission import admit_execution
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.outcome import answer, code_inputs, details, output_texts
from sandgate.pipeline.screening import Screened, screen_texts, strongest
from sandgate.pipeline.stream import Events
from sandgate.policy.loader import ResolvedPolicy
from sandgate.quotas import Charge
from sandgate.services import Services

__all__ = ["Admitted", "Run", "admit", "conclude", "events_for"]


@dataclass(frozen=True)
class Admitted:
    """A request that passed admission and code screening."""

    resolved: ResolvedPolicy
    limits: Limits
    execution_id: str
    code: Screened
    charge: Charge


Run = Callable[[Admitted, OutputSink | None], Awaitable[ExecutionResult]]


async def admit(
    services: Services, caller: Caller, body: ExecuteRequest, resolved: ResolvedPolicy
) -> Admitted:
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
    return Admitted(resolved, limits, uuid.uuid4().hex, code, charge)


def events_for(services: Services, caller: Caller, resolved: ResolvedPolicy) -> Events:
    """The event stream of one execution, screening output as `resolved` says."""
    config = resolved.policy.screening

    async def screen(text: str) -> Any:
        return await services.screener.screen(text, Stage.OUTPUT, config, tenant=caller.key.tenant)

    return Events(screen)


async def conclude(
    services: Services,
    caller: Caller,
    body: ExecuteRequest,
    admitted: Admitted,
    run: Run,
    *,
    action: str,
    events: Events | None = None,
    extra: dict[str, Any] | None = None,
) -> ExecuteResponse:
    """Run (unless blocked), screen the output, record, answer."""
    resolved, code = admitted.resolved, admitted.code
    result: ExecutionResult | None = None
    output: Screened | None = None
    if code.verdict is Action.BLOCK:
        services.metrics.executions.labels(ExecutionStatus.BLOCKED.value).inc()
    else:
        result = await run(admitted, events.sink if events else None)
        await services.budgets.charge_execution(caller.key, result.cpu_ms, admitted.charge)
        if events is not None:
            await events.finish_output()
        output = await screen_texts(
            services.screener,
            output_texts(result),
            Stage.OUTPUT,
            resolved.policy.screening,
            tenant=caller.key.tenant,
            metrics=services.metrics,
        )

    policy = PolicyRef(name=resolved.name, hash=resolved.hash)
    caps = resolved.policy.limits
    response = answer(admitted.execution_id, caller.request_id, policy, caps, code, result, output)
    keep = resolved.policy.audit.content
    await caller.record(
        services.auditor,
        Auditor.event(
            action,
            key=caller.key,
            request_id=caller.request_id,
            client=caller.client,
            policy=resolved,
            verdict=strongest(*response.screening.values()).value,
            status=response.status.value,
            content=code.excerpts(keep) | (output.excerpts(keep) if output else {}),
            details=details(response, body, admitted.limits.model_dump()) | (extra or {}),
        ),
    )
    return response
