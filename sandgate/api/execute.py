"""`POST /execute`: run agent code in a sandbox (the path is `sandgate.pipeline.execute`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from sandgate.api.responses import errors
from sandgate.deps import ServicesDep, caller
from sandgate.keys import Scope
from sandgate.models import ExecuteRequest, ExecuteResponse
from sandgate.pipeline import execute as pipeline
from sandgate.pipeline.caller import Caller

__all__ = ["router"]

router = APIRouter(tags=["execute"])


@router.post(
    "/execute",
    name="execute",
    summary="Run code in a gVisor sandbox.",
    responses=errors(400, 403, 413, 415, 422, 429),
)
async def execute(
    body: ExecuteRequest,
    services: ServicesDep,
    who: Annotated[Caller, Depends(caller(Scope.EXECUTE, "execute"))],
) -> ExecuteResponse:
    """Run `code` under the caller's policy (or a stricter one it names). Answered only once
    the audit record of the execution is committed."""
    return await pipeline.execute(services, who, body)
