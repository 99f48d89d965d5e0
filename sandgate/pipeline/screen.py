"""`POST /screen`, top to bottom: the caller's policy -> the screening step `/execute` uses ->
one audit record -> the answer (the verdict, findings with offsets into the text as sent, and
the text, redacted when the verdict is `redact`)."""

from __future__ import annotations

from sandgate.audit.auditor import Auditor
from sandgate.models import PolicyRef, ScreenRequest, ScreenResponse
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.screening import screen_texts
from sandgate.services import Services

__all__ = ["screen"]


async def screen(services: Services, caller: Caller, body: ScreenRequest) -> ScreenResponse:
    """Screen `body.text` at `body.stage` under the caller's policy (or a stricter one)."""
    resolved = services.policies.resolve(caller.key.name, caller.key.tenant, body.policy)
    await services.auditor.ensure_writable()
    screened = await screen_texts(
        services.screener,
        {"text": body.text},
        body.stage,
        resolved.policy.screening,
        tenant=caller.key.tenant,
        metrics=services.metrics,
    )
    result = screened.results.get("text")
    response = ScreenResponse(
        request_id=caller.request_id,
        verdict=screened.verdict,
        findings=result.findings if result else [],
        text=screened.shown("text"),
        policy=PolicyRef(name=resolved.name, hash=resolved.hash),
        latency_ms=screened.stage.latency_ms,
    )
    await caller.record(
        services.auditor,
        Auditor.event(
            "screen",
            key=caller.key,
            request_id=caller.request_id,
            client=caller.client,
            policy=resolved,
            verdict=response.verdict.value,
            content=screened.excerpts(resolved.policy.audit.content),
            details={
                "stage": body.stage.value,
                **screened.stage.audited(),
                "errors": result.errors if result else [],
                "latency_ms": round(response.latency_ms, 3),
                "length": len(body.text),
            },
        ),
    )
    return response
