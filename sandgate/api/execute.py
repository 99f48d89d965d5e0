"""`POST /execute`: run agent code in a sandbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sandgate.deps import ServicesDep, require
from sandgate.keys import ApiKey, Scope
from sandgate.models import ExecuteRequest, ExecuteResponse

__all__ = ["router"]

router = APIRouter(tags=["execute"])


@router.post("/execute", summary="Run code in a gVisor sandbox.")
async def execute(
    body: ExecuteRequest,
    request: Request,
    services: ServicesDep,
    key: Annotated[ApiKey, Depends(require(Scope.EXECUTE))],
) -> ExecuteResponse:
    """Run `code` under the caller's policy (or a stricter one it names)."""
    resolved = services.policies.resolve(key.name, key.tenant, body.policy)
    return await services.executor.execute(
        body, resolved, tenant=key.tenant, request_id=request.state.request_id
    )
