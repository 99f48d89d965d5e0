"""`POST /execute`: run agent code in a sandbox."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from guards import Action
from sandgate.auditing import Auditor
from sandgate.deps import ServicesDep, client_address, require
from sandgate.keys import ApiKey, Scope
from sandgate.models import ExecuteRequest, ExecuteResponse

__all__ = ["router"]

router = APIRouter(tags=["execute"])


def _details(response: ExecuteResponse, body: ExecuteRequest, limits: Any) -> dict[str, Any]:
    """What the audit record keeps beyond excerpts: outcome, resource use, findings, egress."""
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
        "screening": {
            stage: {
                "verdict": s.verdict,
                "findings": [
                    f.model_dump(
                        include={"detector", "type", "start", "end", "score", "action", "source"}
                    )
                    for f in s.findings
                ],
            }
            for stage, s in response.screening.items()
        },
        "egress": [a.model_dump() for a in response.egress],
    }


@router.post("/execute", summary="Run code in a gVisor sandbox.")
async def execute(
    body: ExecuteRequest,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require(Scope.EXECUTE))],
) -> ExecuteResponse:
    """Run `code` under the caller's policy (or a stricter one it names). Answered only once
    the audit record of the execution is committed."""
    resolved = services.policies.resolve(key.name, key.tenant, body.policy)
    await services.auditor.ensure_writable()
    response, kept = await services.executor.execute(
        body, resolved, tenant=key.tenant, request_id=request.state.request_id
    )
    verdict = max(
        (s.verdict for s in response.screening.values()), key=lambda a: a.rank, default=Action.ALLOW
    )
    await services.auditor.record(
        Auditor.event(
            "execute",
            key=key,
            request_id=response.request_id,
            client=client_address(request),
            policy=resolved,
            verdict=verdict.value,
            status=response.status.value,
            content=kept,
            details=_details(response, body, resolved.policy.limits.model_dump()),
        )
    )
    return response
