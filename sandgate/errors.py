"""The service's exceptions and the one table that maps them to HTTP answers.

    SandgateError            500 internal_error
    ├── Unauthorized         401 unauthorized        missing, unknown or revoked API key
    ├── Forbidden            403 forbidden           the key lacks the scope
    ├── PolicyRefused        403 policy_refused      asked for a looser or unknown policy
    ├── ScreeningBlocked     403 screening_blocked   a file in or out was blocked by screening
    ├── NotFound             404 not_found           (`session_not_found`, `file_not_found`)
    ├── PayloadTooLarge      413 payload_too_large
    ├── (body unreadable)    400 bad_request          not JSON, or not UTF-8
    ├── (wrong method)       405 method_not_allowed
    ├── (body not JSON)      415 unsupported_media_type
    ├── InvalidInput         422 invalid_request     the schema or a rule of the policy is
    │                                                broken; `details` name each field (`loc`)
    ├── Conflict             409 session_busy        the session runs another execution
    ├── Gone                 410 session_ended       the session ended; `details` give why
    ├── Busy                 429 busy                no sandbox slot in time (Retry-After)
    ├── RateLimited          429 rate_limited        the key's or tenant's bucket is empty
    │                                                (Retry-After, RateLimit-*)
    ├── QuotaExceeded        429 quota_exceeded      a quota of the key or tenant is used up
    │                                                (named in the message and `details`)
    ├── NotSupported         501 not_supported       the backend cannot do this (named)
    └── Unavailable          503 unavailable         backend, image or audit store down
        └── StoreUnavailable 503 unavailable         keys, usage or sessions' store down
        (AuditUnavailable from `sandgate.audit` is answered the same way)

Every answer is JSON: `{"error": {"type", "message", "details"?}, "request_id"}`. Validation
errors name the field (`loc`) but never echo the input back: it may hold secrets or PII.
Anything unexpected is logged with its traceback and answered with a bare 500. Each handler
leaves the error's type and message in the request's state for the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sandgate.audit.errors import AuditUnavailable

__all__ = [
    "ERROR",
    "Busy",
    "Conflict",
    "Gone",
    "NotSupported",
    "ScreeningBlocked",
    "SessionNotFound",
    "StoreUnavailable",
    "FileMissing",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "PayloadTooLarge",
    "PolicyRefused",
    "QuotaExceeded",
    "RateLimited",
    "SandgateError",
    "Unauthorized",
    "Unavailable",
    "error_body",
    "error_for",
    "install_handlers",
]

log = structlog.get_logger(__name__)
ERROR = "error"  # the request state's key for (type, message) of its error answer


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


class ScreeningBlocked(Forbidden):
    """Screening blocked what the request would have written or returned."""

    type = "screening_blocked"


class NotFound(SandgateError):
    """No such resource."""

    status_code = 404
    type = "not_found"


class SessionNotFound(NotFound):
    """No session of that id for this tenant (another tenant's is never revealed)."""

    type = "session_not_found"


class FileMissing(NotFound):
    """No such file in the session's /work."""

    type = "file_not_found"


class PayloadTooLarge(SandgateError):
    """The request body passed the configured limit."""

    status_code = 413
    type = "payload_too_large"


class InvalidInput(SandgateError):
    """Input that breaks the schema or a rule (a limit of the policy, a file path)."""

    status_code = 422
    type = "invalid_request"


class Busy(SandgateError):
    """Every sandbox slot stayed taken for the whole wait."""

    status_code = 429
    type = "busy"


class RateLimited(SandgateError):
    """The key's or its tenant's rate-limit bucket for the route is empty."""

    status_code = 429
    type = "rate_limited"


class Conflict(SandgateError):
    """The resource is busy with another request."""

    status_code = 409
    type = "session_busy"


class Gone(SandgateError):
    """The resource has ended."""

    status_code = 410
    type = "session_ended"


class QuotaExceeded(SandgateError):
    """A quota of the key or tenant is used up; the message names it."""

    status_code = 429
    type = "quota_exceeded"


class NotSupported(SandgateError):
    """The configured backend cannot do what was asked; the message names one that can."""

    status_code = 501
    type = "not_supported"


class Unavailable(SandgateError):
    """A part the request needs is down; nothing was done."""

    status_code = 503
    type = "unavailable"


class StoreUnavailable(Unavailable):
    """A store shared by the nodes (keys, usage, the sessions' registry) cannot be reached."""


def error_for(
    type_: str,
    message: str,
    status_code: int,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> SandgateError:
    """The error of an answer given elsewhere (a worker's), by its type: raised here, it is
    answered the same way."""
    pending: list[type[SandgateError]] = [SandgateError]
    error: SandgateError | None = None
    while pending and error is None:
        kind = pending.pop()
        if kind.type == type_ and kind.status_code == status_code:
            error = kind(message) if kind is Unauthorized else kind(message, details=details)
        pending.extend(kind.__subclasses__())
    if error is None:
        error = Unavailable(message) if status_code >= 500 else InvalidInput(message)
    error.details = details
    if headers:
        error.headers = (error.headers or {}) | headers
    return error


def error_body(request: Request | None, type_: str, message: str, details: Any = None) -> Any:
    """The JSON body of every error answer."""
    error: dict[str, Any] = {"type": type_, "message": message}
    if details:
        error["details"] = details
    request_id = request.scope.get("state", {}).get("request_id") if request else None
    return {"error": error, "request_id": request_id}


def _answer(
    request: Request,
    status: int,
    type_: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error answer; its type and message stay in the request's state for the audit trail."""
    request.scope.setdefault("state", {})[ERROR] = (type_, message)
    return JSONResponse(
        error_body(request, type_, message, details), status_code=status, headers=headers
    )


def _loc_part(part: Any) -> Any:
    """A location step safe to send back: a bad dict key may not be valid UTF-8 itself."""
    if isinstance(part, int):
        return part
    text = str(part)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return ascii(text)[1:-1]
    return text if len(text) <= 128 else text[:128] + "..."


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": [_loc_part(p) for p in err.get("loc", ())],
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]


def install_handlers(app: FastAPI) -> None:
    """Register the error table on `app`."""

    @app.exception_handler(SandgateError)
    async def _sandgate(request: Request, exc: SandgateError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("request.failed", error=exc.type, message=exc.message)
        return _answer(request, exc.status_code, exc.type, exc.message, exc.details, exc.headers)

    @app.exception_handler(AuditUnavailable)
    async def _audit(request: Request, exc: AuditUnavailable) -> JSONResponse:
        log.warning("request.failed", error=Unavailable.type, message=str(exc))
        return _answer(request, 503, Unavailable.type, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        content_type = request.headers.get("content-type", "")
        body_refused = any(err.get("loc", ("",))[0] == "body" for err in exc.errors())
        if body_refused and "json" not in content_type:
            message = (
                f"send the body as JSON (Content-Type: application/json), not {content_type!r}"
            )
            return _answer(request, 415, "unsupported_media_type", message)
        details = _validation_details(exc)
        where = ", ".join(".".join(str(p) for p in d["loc"]) + ": " + d["msg"] for d in details)
        return _answer(request, 422, InvalidInput.type, f"invalid request: {where}", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        own = next(
            (c for c in SandgateError.__subclasses__() if c.status_code == exc.status_code), None
        )
        type_ = own.type if own else HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_")
        message = str(exc.detail)
        if exc.status_code == 400:  # FastAPI's words for a body it could not decode
            message = "the body cannot be read: send UTF-8 JSON"
        return _answer(request, exc.status_code, type_, message, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("request.crashed", error=type(exc).__name__, exc_info=exc)
        return _answer(request, 500, "internal_error", "internal error")
