"""`GET /metrics`: Prometheus text format; needs a key like every route but health."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from sandgate.api.responses import errors
from sandgate.deps import CurrentKey, ServicesDep
from sandgate.dispatch.base import QueueUnavailable
from sandgate.dispatch.gauges import queue_exposition

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    name="metrics.read",
    summary="Prometheus metrics of the service, all workers summed.",
    response_class=PlainTextResponse,
    responses=errors(),
)
async def metrics(services: ServicesDep, _key: CurrentKey) -> PlainTextResponse:
    """Counters of executions, refusals, screenings and policy reloads, and the queue as it
    stands: depth, oldest wait, each live worker's load and heartbeat age (text format 0.0.4)."""
    try:
        stats = await services.dispatch.stats()
    except QueueUnavailable:
        stats = None
    text = services.metrics.exposition() + queue_exposition(stats)
    return PlainTextResponse(text, media_type=CONTENT_TYPE_LATEST)
