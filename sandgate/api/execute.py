"""`POST /execute`: run agent code in a sandbox (the path is `sandgate.pipeline.execute`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from sandgate.api.responses import errors
from sandgate.api.streaming import STREAM_DOC, streamed, wants_stream
from sandgate.deps import ServicesDep, caller
from sandgate.keys import Scope
from sandgate.models import ExecuteRequest, ExecuteResponse
from sandgate.pipeline import execute as pipeline
from sandgate.pipeline.caller import Caller
from sandgate.pipeline.execution import events_for

__all__ = ["router"]

router = APIRouter(tags=["execute"])


@router.post(
    "/execute",
    name="execute",
    response_model=ExecuteResponse,
    summary="Run code in a gVisor sandbox.",
    responses=STREAM_DOC | errors(400, 403, 413, 415, 422, 429),
)
async def execute(
    body: ExecuteRequest,
    request: Request,
    services: ServicesDep,
    who: Annotated[Caller, Depends(caller(Scope.EXECUTE, "execute"))],
) -> Any:
    """Run `code` under the caller's policy (or a stricter one it names). Answered only once
    the audit record of the execution is committed; streamed with `Accept:
    application/x-ndjson`."""
    job = await pipeline.admitted(services, who, body)
    if not wants_stream(request):
        return await pipeline.run(services, who, job)
    events = events_for(services, job)
    return streamed(
        request, services.auditor, events, lambda: pipeline.run(services, who, job, events)
    )
