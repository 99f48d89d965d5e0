"""The service's exceptions and the one table that maps them to HTTP answers.

    SandgateError            500 internal_error
    ├── Unauthorized         401 unauthorized        missing, unknown or revoked API key
    ├── Forbidden            403 forbidden           the key lacks the scope
    ├── PolicyRefused        403 policy_refused      asked for a looser or unknown policy
    ├── NotFound             404 not_found
    ├── PayloadTooLarge      413 payload_too_large
    ├── (body not JSON)      415 unsupported_media_type
    ├── (schema violated)    422 invalid_request     `details` name each field (`loc`)
    ├── InvalidInput         422 invalid_input       passed the schema, broke a rule
    ├── Busy                 429 busy                no sandbox slot in time (Retry-After)
    └── Unavailable          503 unavailable         backend, image or audit store down

Every answer is JSON: `{"error": {"type", "message", "details"?}, "request_id"}`. Validation
errors name the field (`loc`) but never echo the input back: it may hold secrets or PII.
Anything unexpected is logged with its traceback and answered with a bare 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = [
    "Busy",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PolicyRefused",
    "SandgateError",
    "Unauthorized",
    "Unavailable",
    "error_body",
    "install_handlers",
]

log = structlog.get_logger(__name__)


class SandgateError(Exception):
    """Base of the service's own errors; carries its HTTP status and error type."""

    status_code = 500
    type = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status_code}, {self.message!r})"


class Unauthorized(SandgateError):
    """No valid API key."""

    status_code = 401
    type = "unauthorized"

    def __init__(self, message: str = "missing or invalid API key") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(SandgateError):
    """The key is valid but lacks the scope."""

    status_code = 403
    type = "forbidden"


class PolicyRefused(Forbidden):
    """The request asked for a policy it may not use."""

    status_code = 403
    type = "policy_refused"


class NotFound(SandgateError):
    """No such resource."""

    status_code = 404
    type = "not_found"


class PayloadTooLarge(SandgateError):
    """The request body passed the configured limit."""

    status_code = 413
    type = "payload_too_large"


class InvalidInput(SandgateError):
    """Well-formed input that breaks a rule (a limit, a file path)."""

    status_code = 422
    type = "invalid_input"


class Busy(SandgateError):
    """Every sandbox slot stayed taken for the whole wait."""

    status_code = 429
    type = "busy"


class Unavailable(SandgateError):
    """A part the request needs is down; nothing was done."""

    status_code = 503
    type = "unavailable"


def error_body(request: Request | None, type_: str, message: str, details: Any = None) -> Any:
    """The JSON body of every error answer."""
    error: dict[str, Any] = {"type": type_, "message": message}
    if details:
        error["details"] = details
    request_id = request.scope.get("state", {}).get("request_id") if request else None
    return {"error": error, "request_id": request_id}


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]


RefusalHook = Callable[[Request, SandgateError], Awaitable[None]]


def install_handlers(app: FastAPI, on_refusal: RefusalHook | None = None) -> None:
    """Register the error table on `app`. `on_refusal` sees every 401, 403 and 429 before it
    is answered (the audit log); if it raises a SandgateError, that is answered instead."""

    @app.exception_handler(SandgateError)
    async def _sandgate(request: Request, exc: SandgateError) -> JSONResponse:
        if on_refusal is not None and isinstance(exc, Unauthorized | Forbidden | Busy):
            try:
                await on_refusal(request, exc)
            except SandgateError as failure:
                exc = failure
        if exc.status_code >= 500:
            log.warning("request.failed", error=exc.type, message=exc.message)
        return JSONResponse(
            error_body(request, exc.type, exc.message, exc.details),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        if request.method in ("POST", "PUT") and "json" not in content_type:
            message = (
                f"send the body as JSON (Content-Type: application/json), not {content_type!r}"
            )
            return JSONResponse(error_body(request, "unsupported_media_type", message), 415)
        details = _validation_details(exc)
        where = ", ".join(".".join(str(p) for p in d["loc"]) + ": " + d["msg"] for d in details)
        return JSONResponse(
            error_body(request, "invalid_request", f"invalid request: {where}", details),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        own = next(
            (c for c in SandgateError.__subclasses__() if c.status_code == exc.status_code), None
        )
        type_ = own.type if own else HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        return JSONResponse(
            error_body(request, type_, str(exc.detail)),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request.crashed", error=type(exc).__name__, exc_info=exc)
        return JSONResponse(error_body(request, "internal_error", "internal error"), 500)
