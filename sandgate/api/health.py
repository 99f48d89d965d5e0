"""Liveness and readiness; the only routes that need no key."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from sandgate.audit.base import AuditError
from sandgate.deps import ServicesDep
from sandgate.dispatch.base import QueueUnavailable
from sandgate.errors import StoreUnavailable
from sandgate.keys.expiry import expiring
from sandgate.services import Services
from sandgate.settings import PRIVATE_EGRESS_WARNING
from sandgate.stores import state_dsn

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", name="health", summary="Liveness: the process answers.")
async def health() -> dict[str, str]:
    """Always `ok` while the process serves requests."""
    return {"status": "ok"}


async def _audit_check(services: Services) -> dict[str, Any]:
    auditor = services.auditor
    if not auditor.enabled:
        return {"ok": False, "detail": "auditing is off (SANDGATE_AUDIT_DSN=off)"}
    try:
        records = await auditor.head_seq()
    except AuditError as exc:
        return {"ok": False, "detail": f"audit store unavailable: {type(exc).__name__}"}
    return {"ok": True, "records": records}


async def _queue_checks(services: Services) -> dict[str, Any]:
    """The queue's engine, and the workers alive to take its jobs."""
    try:
        stats = await services.dispatch.stats()
    except QueueUnavailable as exc:
        return {"queue": {"ok": False, "engine": services.dispatch.name, "detail": str(exc)}}
    checks: dict[str, Any] = {
        "queue": {"ok": True, "engine": services.dispatch.name, "depth": stats.depth}
    }
    # Reported, not required: without workers, /screen still works and executions wait.
    checks["workers"] = {"ok": True, "live": [w.model_dump() for w in stats.workers]}
    return checks


def _images_check(services: Services) -> tuple[dict[str, Any], list[str]]:
    """Every image with its recipe hash, size and whether it is built, and a warning naming the
    build command when one the loaded policies allow is missing. A missing image refuses only
    the requests that name it (503); the backend's own `image` check covers its default."""
    statuses = services.images.statuses()
    allowed = {
        i for p in services.policies.current.policies.values() for i in p.policy.allowed_images()
    }
    missing = sorted(s.name for s in statuses if s.name in allowed and not s.built)
    check: dict[str, Any] = {
        "ok": True,
        "images": [s.model_dump(exclude_none=True) for s in statuses],
    }
    warnings = [f"images the policies allow are not built: {missing}; run `sandgate image build`"]
    return check, warnings if missing else []


@router.get(
    "/ready",
    name="ready",
    summary="Readiness: every part a request needs is in place.",
    responses={
        503: {
            "description": "Not ready: the failing checks say why (the same body as 200).",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def ready(services: ServicesDep) -> JSONResponse:
    """Each check by name with `ok` and, when failing, what is wrong; 503 if any fails."""
    backend = services.backend
    checks: dict[str, Any] = {
        name: {"ok": problem is None, **({"detail": problem} if problem else {})}
        for name, problem in (backend.checks() if backend else {}).items()
    }
    checks["audit"] = await _audit_check(services)
    checks |= await _queue_checks(services)
    registry = services.policies
    checks["policies"] = {"ok": True, "loaded": sorted(registry.current.policies)}
    image_warnings: list[str] = []
    if backend is not None:  # images are the concern of the nodes that run sandboxes
        checks["images"], image_warnings = _images_check(services)
    try:
        checks["cpu_budget"] = await asyncio.to_thread(services.budgets.breaker.status)
    except StoreUnavailable as exc:
        checks["cpu_budget"] = {"ok": False, "detail": exc.message}
    screener = services.screener
    checks["screening"] = {
        "ok": True,
        "entities": screener.entities_by_detector(),
        "not_detectable": screener.unavailable_entities(),
    }
    warnings = (backend.warnings() if backend else []) + image_warnings
    if not checks.get("workers", {"live": [None]})["live"]:
        warnings.append("no live worker: executions wait in the queue, then end busy (429)")
    if services.settings.egress_allow_private:
        warnings.append(PRIVATE_EGRESS_WARNING)
    if registry.rejected is not None:
        first = registry.rejected.issues[0]
        warnings.append(
            f"policy reload rejected ({len(registry.rejected.issues)} problem(s), e.g. {first}); "
            "the last good policies stay in force"
        )
    checks["stores"] = {
        "ok": True,
        "engine": "postgresql" if state_dsn(services.settings) else "sqlite",
    }
    try:
        listed = await asyncio.to_thread(services.keys.list)
        warnings += expiring(listed, registry.current, time.time())
    except StoreUnavailable as exc:
        checks["stores"] |= {"ok": False, "detail": exc.message}
    ok = all(check["ok"] for check in checks.values())
    body = {
        "status": "ready" if ok else "not_ready",
        "role": services.settings.role,
        "backend": backend.name if backend else None,
        "checks": checks,
        # This worker's warm pool (each worker has its own): per class, `ready` and `target`.
        "pool": backend.pool_state() if backend else {},
        "warnings": warnings,
    }
    return JSONResponse(body, status_code=200 if ok else 503)
