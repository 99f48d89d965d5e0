"""`POST /execute`, top to bottom: admission (the policy's limits, the daily quotas, the host's CPU
breaker) -> screen the code -> run (charged to the quotas) -> screen the output -> one audit
record -> the answer.

A `block` on the code runs nothing and answers `status: blocked`; a `redact` runs the code with
its findings replaced. A `block` on the output withholds stdout and stderr; a `redact` returns
them redacted; the raw `*_base64` bytes are dropped whenever screening changed anything. The
answer goes out only once its record is committed; the store is checked before anything runs.
"""

from __future__ import annotations

import uuid
from typing import Any

from guards import Action, Stage
from sandbox.base import ExecutionResult, ExecutionSpec
from sandgate.audit.auditor import Auditor
from sandgate.models import ExecuteRequest, ExecuteResponse, ExecutionStatus, PolicyRef
from sandgate.pipeline.admission import admit_execution
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.screening import Screened, screen_texts, strongest
from sandgate.services import Services

__all__ = ["execute"]


async def execute(services: Services, caller: Caller, body: ExecuteRequest) -> ExecuteResponse:
    """Run `body.code` under the caller's policy (or a stricter one it names)."""
    resolved = services.policies.resolve(caller.key.name, caller.key.tenant, body.policy)
    limits = admit_execution(body, resolved)
    await services.auditor.ensure_writable()
    charge = await services.budgets.admit_execution(caller.key, services.policies.current)
    execution_id = uuid.uuid4().hex
    screening = resolved.policy.screening
    tenant = caller.key.tenant

    inputs = {"code": body.code} | {f"file:{name}": text for name, text in body.files.items()}
    code = await screen_texts(
        services.screener, inputs, Stage.CODE, screening, tenant=tenant, metrics=services.metrics
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
            files={name: code.shown(f"file:{name}") for name in body.files},
            limits=limits,
            egress=resolved.policy.network.egress_spec(),
        )
        result = await services.executor.run(spec, policy=resolved.name)
        await services.budgets.charge_execution(caller.key, result.cpu_ms, charge)
        output = await screen_texts(
            services.screener,
            {"stdout": result.stdout, "stderr": result.stderr},
            Stage.OUTPUT,
            screening,
            tenant=tenant,
            metrics=services.metrics,
        )

    policy = PolicyRef(name=resolved.name, hash=resolved.hash)
    response = _answer(execution_id, caller.request_id, policy, code, result, output)
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
            details=_details(response, body, limits.model_dump()),
        ),
    )
    return response


def _answer(
    execution_id: str,
    request_id: str,
    policy: PolicyRef,
    code: Screened,
    result: ExecutionResult | None,
    output: Screened | None,
) -> ExecuteResponse:
    """The answer, field by field: blocked (nothing ran), or the run with its output as
    screening lets it go."""
    if result is None or output is None:
        return ExecuteResponse(
            execution_id=execution_id,
            request_id=request_id,
            status=ExecutionStatus.BLOCKED,
            exit_code=None,
            stdout="",
            stderr="",
            stdout_truncated=False,
            stderr_truncated=False,
            wall_ms=0,
            cpu_ms=0,
            peak_memory_bytes=0,
            detail=f"code blocked by screening: {code.stage.summary()}",
            policy=policy,
            screening={"code": code.stage},
        )
    withheld = output.verdict is Action.BLOCK
    raw_ok = output.verdict is Action.ALLOW  # the raw bytes would carry what was replaced
    return ExecuteResponse(
        execution_id=execution_id,
        request_id=request_id,
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
        policy=policy,
        egress=result.egress,
        screening={"code": code.stage, "output": output.stage},
    )


def _details(response: ExecuteResponse, body: ExecuteRequest, limits: Any) -> dict[str, Any]:
    """What the record keeps beyond excerpts: outcome, resource use, findings, egress."""
    return {
        "execution_id": response.execution_id,
        "language": body.language,
        "exit_code": response.exit_code,
        "detail": response.detail,
        "wall_ms": response.wall_ms,
        "cpu_ms": response.cpu_ms,
        "peak_memory_bytes": response.peak_memory_bytes,
        "stdout_truncated": response.stdout_truncated,
        "stderr_truncated": response.stderr_truncated,
        "output_withheld": response.output_withheld,
        "limits": limits,
        "files": sorted(body.files),
        "screening": {stage: s.audited() for stage, s in response.screening.items()},
        "egress": [a.model_dump() for a in response.egress],
    }
