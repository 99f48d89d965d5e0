"""Route dependencies: the running services and the caller's API key, as `Annotated` aliases."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sandgate.errors import Forbidden, RateLimited, Unauthorized
from sandgate.keys import ApiKey, Scope
from sandgate.keys.expiry import when
from sandgate.logs import EXTRA_HEADERS
from sandgate.pipeline.caller import Caller
from sandgate.ratelimit import LimitedRoute
from sandgate.services import Services
from sandgate.tracing import span

__all__ = ["CurrentKey", "ServicesDep", "caller", "client_address", "require"]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer sg_...`")


async def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(_services)]


async def _current_key(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    with span("auth"):  # off the loop: the store may be PostgreSQL, and may be away (503)
        key = await asyncio.to_thread(services.keys.lookup, credentials.credentials)
    if key is None:
        raise Unauthorized("invalid or revoked API key")
    now = time.time()
    if key.expired(now):
        assert key.expires_at is not None
        raise Unauthorized(
            f"API key {key.id} expired at {when(key.expires_at)}: use its successor, or ask "
            f"an operator for a new key (`sandgate keys rotate {key.id}`)"
        )
    services.keys.touch(key.id, now)
    structlog.contextvars.bind_contextvars(key_id=key.id, tenant=key.tenant)
    request.state.key = key  # for the audit record of a refusal further on
    return key


CurrentKey = Annotated[ApiKey, Depends(_current_key)]


def client_address(request: Request) -> str | None:
    """The peer's address as the server saw it."""
    return request.client.host if request.client else None


def require(scope: Scope) -> Callable[[ApiKey], Coroutine[Any, Any, ApiKey]]:
    """A dependency that passes the caller's key on only if it holds `scope`."""

    async def check(key: CurrentKey) -> ApiKey:
        if not key.allows(scope):
            raise Forbidden(f"this key lacks the {scope.value!r} scope")
        return key

    return check


async def _rate_check(request: Request, services: Services, key: ApiKey, route: str) -> None:
    """Take a token for `route` from the key's and its tenant's buckets; 429 when empty."""
    policies = services.policies.current
    with span("ratelimit", route=route):
        allowance = await services.limiter.admit(
            key.id, policies.bound(key.name, key.tenant), key.tenant, policies, route
        )
    if allowance is None:
        return
    request.scope["state"][EXTRA_HEADERS] = allowance.headers()
    if not allowance.allowed:
        services.metrics.refused.labels("rate_limited").inc()
        raise RateLimited(
            f"rate limit of this {allowance.scope} for {route} reached; retry in "
            f"{allowance.retry_after_s} s",
            headers=allowance.headers(),
        )


def caller(
    scope: Scope, route: LimitedRoute | None = None
) -> Callable[..., Coroutine[Any, Any, Caller]]:
    """A dependency that hands a pipeline its caller: a key holding `scope` (and, for a
    limited `route`, a token of its rate limits), the request's id and peer, and the state the
    audit trail reads."""
    holder = require(scope)

    # A default, not an annotation: string annotations cannot name this closure's `holder`.
    async def build(
        request: Request,
        services: ServicesDep,
        key: ApiKey = Depends(holder),  # noqa: B008
    ) -> Caller:
        if route is not None:
            await _rate_check(request, services, key, route)
        return Caller(
            key=key,
            request_id=request.state.request_id,
            client=client_address(request),
            state=request.scope["state"],
        )

    return build
