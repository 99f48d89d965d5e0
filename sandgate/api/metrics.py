"""`GET /metrics`: Prometheus text format; needs a key like every route but health."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sandgate.deps import CurrentKey, ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus metrics of this process.")
async def metrics(services: ServicesDep, _key: CurrentKey) -> Response:
    """Counters of executions, refusals, screenings and policy reloads."""
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
