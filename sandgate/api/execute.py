"""`POST /execute`: run agent code in a sandbox."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sandgate.deps import ServicesDep, require
from sandgate.keys import ApiKey, Scope
from sandgate.models import ExecuteRequest, ExecuteResponse, PolicyRef

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
    execution_id, result = await services.executor.execute(body, resolved)
    return ExecuteResponse(
        execution_id=execution_id,
        request_id=request.state.request_id,
        policy=PolicyRef(name=resolved.name, hash=resolved.hash),
        **result.model_dump(),
    )
