"""`GET /metrics`: Prometheus text format; needs a key like every route but health."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from sandgate.deps import CurrentKey, ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics of the service, all workers summed.")
async def metrics(services: ServicesDep, _key: CurrentKey) -> Response:
    """Counters of executions, refusals, screenings and policy reloads."""
    return Response(services.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
