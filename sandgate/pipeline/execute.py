"""`POST /execute`, top to bottom: admission -> screen the code -> run -> screen the output ->
one audit record -> the answer.

A `block` on the code runs nothing and answers `status: blocked`; a `redact` runs the code with
its findings replaced. A `block` on the output withholds stdout, stderr, rich results and files;
a `redact` returns them redacted; the raw `*_base64` bytes are dropped whenever screening
changed anything (see `sandgate.pipeline.outcome`). The answer goes out only once its record
is committed; the store is checked before anything runs.
"""

from __future__ import annotations

import uuid

from guards import Action, Stage
from sandbox.base import ExecutionResult, ExecutionSpec
from sandgate.audit.auditor import Auditor
from sandgate.models import ExecuteRequest, ExecuteResponse, ExecutionStatus, PolicyRef
from sandgate.pipeline.admission import admit_execution
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.outcome import answer, code_inputs, details, output_texts, spec_files
from sandgate.pipeline.screening import Screened, screen_texts, strongest
from sandgate.services import Services

__all__ = ["execute"]


async def execute(services: Services, caller: Caller, body: ExecuteRequest) -> ExecuteResponse:
    """Run `body.code` under the caller's policy (or a stricter one it names)."""
    resolved = services.policies.resolve(caller.key.name, caller.key.tenant, body.policy)
    limits = admit_execution(body, resolved)
    await services.auditor.ensure_writable()
    execution_id = uuid.uuid4().hex
    screening, tenant = resolved.policy.screening, caller.key.tenant

    code = await screen_texts(
        services.screener,
        code_inputs(body),
        Stage.CODE,
        screening,
        tenant=tenant,
        metrics=services.metrics,
    )
    result: ExecutionResult | None = None
    output: Screened | None = None
    if code.verdict is Action.BLOCK:
        services.metrics.executions.labels(ExecutionStatus.BLOCKED.value).inc()
    else:
        spec = ExecutionSpec(
            execution_id=execution_id,
            code=code.shown("code"),
            language=body.language,
            stdin=body.stdin,
            files=spec_files(body, code),
            outputs=tuple(body.outputs),
            limits=limits,
            egress=resolved.policy.network.egress_spec(),
        )
        result = await services.executor.run(spec, policy=resolved.name)
        output = await screen_texts(
            services.screener,
            output_texts(result),
            Stage.OUTPUT,
            screening,
            tenant=tenant,
            metrics=services.metrics,
        )

    policy = PolicyRef(name=resolved.name, hash=resolved.hash)
    caps = resolved.policy.limits
    response = answer(execution_id, caller.request_id, policy, caps, code, result, output)
    keep = resolved.policy.audit.content
    await caller.record(
        services.auditor,
        Auditor.event(
            "execute",
            key=caller.key,
            request_id=caller.request_id,
            client=caller.client,
            policy=resolved,
            verdict=strongest(*response.screening.values()).value,
            status=response.status.value,
            content=code.excerpts(keep) | (output.excerpts(keep) if output else {}),
            details=details(response, body, limits.model_dump()),
        ),
    )
    return response
