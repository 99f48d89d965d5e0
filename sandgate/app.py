"""The app factory: the middleware, the error table, the routes, and the parts' lifespan.

Middleware, outermost first (inside FastAPI's own server span, `sandgate.tracing`): request
ids, the headers a step asked for (`RateLimit-*`), the access log line and the request
metrics; the audit trail (one record per answered request its pipeline did not record); the
request body limit (413). A worker (role `worker`) serves only health, readiness and metrics;
it takes its work from the queue.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from guards.screener import Screener
from sandbox.base import SandboxBackend
from sandgate import __version__
from sandgate.api import audit, execute, executions, health, policies, screen, sessions, usage
from sandgate.api import metrics as metrics_api
from sandgate.api.responses import install_openapi
from sandgate.audit.auditor import Auditor
from sandgate.audit.trail import AuditTrail
from sandgate.bodylimit import BodyLimitMiddleware
from sandgate.dispatch.streams import RedisDispatcher
from sandgate.errors import install_handlers
from sandgate.logs import RequestIdMiddleware, configure_logging
from sandgate.metrics import Metrics
from sandgate.observe import count_request
from sandgate.pipeline import carry, session_calls
from sandgate.services import Services, running
from sandgate.settings import Settings
from sandgate.tracing import FASTAPI_TELEMETRY

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None,
    *,
    backend: SandboxBackend | None = None,
    screener: Screener | None = None,
) -> FastAPI:
    """A ready-to-serve app; its parts start in the lifespan, not here. `backend` and
    `screener` replace the ones the settings would build (tests)."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    started: list[Services] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(settings, backend=backend, screener=screener) as services:
            if services.executor is None:
                await services.dispatch.open(None, None)
            else:
                await services.dispatch.open(
                    functools.partial(carry.run_job, services),
                    functools.partial(carry.lose, services),
                )
                if isinstance(services.dispatch, RedisDispatcher):  # it holds sessions
                    services.dispatch.serve_calls(functools.partial(session_calls.serve, services))
            app.state.services = services
            started.append(services)
            try:
                yield
            finally:
                started.clear()
                await services.sessions.stop_reaping()
                await services.dispatch.close()

    def auditor() -> Auditor | None:
        return started[0].auditor if started else None

    def metrics() -> Metrics | None:
        return started[0].metrics if started else None

    docs = settings.public_docs
    app = FastAPI(
        title="Sandgate",
        version=__version__,
        description="Runs agent code in gVisor sandboxes and screens what goes in and out.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        telemetry=FASTAPI_TELEMETRY,
    )
    install_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(AuditTrail, auditor=auditor)
    app.add_middleware(
        RequestIdMiddleware,
        on_end=lambda route, status, seconds: count_request(metrics(), route, status, seconds),
    )
    routers = [health.router, metrics_api.router]
    if settings.role != "worker":
        routers += [execute.router, executions.router, screen.router, sessions.router]
        routers += [policies.router, audit.router, usage.router]
    for router in routers:
        app.include_router(router)
    install_openapi(app)
    return app
