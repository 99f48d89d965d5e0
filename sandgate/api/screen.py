"""`POST /screen`: vet a text going into or out of an agent."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sandgate.auditing import Auditor, excerpts
from sandgate.deps import ServicesDep, client_address, require
from sandgate.keys import ApiKey, Scope
from sandgate.models import PolicyRef, ScreenRequest, ScreenResponse

__all__ = ["router"]

router = APIRouter(tags=["screen"])


@router.post("/screen", summary="Screen a text for PII, secrets and injection.")
async def screen(
    body: ScreenRequest,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require(Scope.SCREEN))],
) -> ScreenResponse:
    """The verdict (allow, redact, block), each finding with offsets into the text as sent,
    and the text itself, redacted when the verdict is `redact`. Answered only once the audit
    record is committed."""
    resolved = services.policies.resolve(key.name, key.tenant, body.policy)
    result = await services.screener.screen(
        body.text, body.stage, resolved.policy.screening, tenant=key.tenant
    )
    services.metrics.screenings.labels(body.stage.value, result.verdict.value).inc()
    findings = [
        f.model_dump(include={"detector", "type", "start", "end", "score", "action"})
        for f in result.findings
    ]
    await services.auditor.record(
        Auditor.event(
            "screen",
            key=key,
            request_id=request.state.request_id,
            client=client_address(request),
            policy=resolved,
            verdict=result.verdict.value,
            content=excerpts({"text": body.text}, {"text": result}, resolved.policy.audit.content),
            details={
                "stage": body.stage.value,
                "findings": findings,
                "errors": result.errors,
                "latency_ms": round(result.latency_ms, 3),
                "length": len(body.text),
            },
        )
    )
    return ScreenResponse(
        request_id=request.state.request_id,
        verdict=result.verdict,
        findings=result.findings,
        text=result.text,
        policy=PolicyRef(name=resolved.name, hash=resolved.hash),
        latency_ms=result.latency_ms,
    )
