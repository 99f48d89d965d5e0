"""The client's exceptions: the service's error body mapped to one class per kind of failure.

    SandgateError                 base of everything this package raises
    ├── ConfigurationError        no API key, a bad URL: nothing was sent
    ├── ConnectionFailed          the service could not be reached or did not answer in time
    ├── ProtocolError             the service answered something this client cannot read
    │   └── StreamInterrupted     a stream ended before its `end` event
    ├── ChecksumMismatch          a file's bytes do not match the sha256 the service sent
    ├── ExecutionFailed           an asynchronous execution ended `failed`
    ├── StillRunning              an asynchronous execution did not end within the wait
    └── APIError                  an HTTP error answer: status, type, message, details, request_id
        ├── InvalidRequest        400, 415, 422 (`details` name each field)
        ├── AuthError             401: missing, unknown or revoked API key
        ├── Forbidden             403: the key lacks the scope
        │   └── PolicyRefused     403 `policy_refused`: a looser or unknown policy was asked for
        ├── NotFound              404
        │   └── SessionNotFound   404 `session_not_found`: unknown, or another tenant's
        ├── SessionEnded          410 `session_ended`, with its `reason` (idle, ttl, deleted...)
        ├── PayloadTooLarge       413
        ├── RateLimited           429 `busy` or `rate_limited`, with `retry_after` (seconds)
        │   └── QuotaExceeded     429 `quota_exceeded`, naming the `quota`
        ├── ServerError           500 and any other 5xx but 503
        └── Unavailable           503: a part of the service is down; nothing was done

`RateLimited` and `Unavailable` are retried (see `Sandgate`'s `max_retries`); the service did
nothing for either, so retrying is safe for every call.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import httpx

__all__ = [
    "APIError",
    "AuthError",
    "ChecksumMismatch",
    "ConfigurationError",
    "ConnectionFailed",
    "ExecutionFailed",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "PolicyRefused",
    "ProtocolError",
    "QuotaExceeded",
    "RateLimited",
    "SandgateError",
    "ServerError",
    "SessionEnded",
    "SessionNotFound",
    "StillRunning",
    "StreamInterrupted",
    "Unavailable",
    "error_from_response",
    "parse_retry_after",
]


class SandgateError(Exception):
    """Base of every error this package raises."""


class ConfigurationError(SandgateError):
    """The client is not set up to send anything (no API key, no URL)."""


class ConnectionFailed(SandgateError):
    """The service could not be reached, or did not answer within the timeout."""


class ProtocolError(SandgateError):
    """The service answered something that does not follow the wire format."""


class StreamInterrupted(ProtocolError):
    """A streamed execution ended before the service sent its `end` event."""


class ChecksumMismatch(SandgateError):
    """A file's content does not hash to the sha256 the service sent with it."""


class ExecutionFailed(SandgateError):
    """An asynchronous execution ended with status `failed`."""

    def __init__(self, execution_id: str, message: str) -> None:
        super().__init__(f"execution {execution_id} failed: {message}")
        self.execution_id = execution_id


class StillRunning(SandgateError):
    """`executions.wait()` gave up: the execution is still queued or running."""


class APIError(SandgateError):
    """An error answer of the service, as its body says: `{"error": {...}, "request_id"}`."""

    def __init__(
        self,
        status_code: int,
        type: str,
        message: str,
        *,
        details: Any = None,
        request_id: str | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.type = type
        self.message = message
        self.details = details
        self.request_id = request_id
        self.headers = headers if headers is not None else httpx.Headers()

    def __str__(self) -> str:
        return f"{self.message} ({self.status_code} {self.type})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status_code}, {self.type!r}, {self.message!r})"


class InvalidRequest(APIError):
    """400, 415 or 422: the request broke the schema or a rule; `details` says where."""


class AuthError(APIError):
    """401: the API key is missing, unknown or revoked."""


class Forbidden(APIError):
    """403: the key is valid but may not do this."""


class PolicyRefused(Forbidden):
    """403 `policy_refused`: the request named a policy looser than the key's, or none known."""


class NotFound(APIError):
    """404: no such resource."""


class SessionNotFound(NotFound):
    """404 `session_not_found`: an unknown session id, or another tenant's."""


class SessionEnded(APIError):
    """410 `session_ended`: the session is over; `reason` says why when the service does."""

    @property
    def reason(self) -> str | None:
        """`idle`, `ttl`, `deleted`, `restart`, `memory_limit` or `killed`, when given."""
        return _detail(self.details, "reason")


class PayloadTooLarge(APIError):
    """413: the body, the code or a file is over the service's limit."""


class _Retryable(APIError):
    """An answer for which the service did nothing, so the call may be sent again."""

    @property
    def retry_after(self) -> float | None:
        """Seconds the service asks to wait (`Retry-After`), when it says."""
        return parse_retry_after(self.headers.get("retry-after"))


class RateLimited(_Retryable):
    """429: no sandbox free in time (`busy`) or the key's rate limit (`rate_limited`)."""

    @property
    def limit(self) -> int | None:
        """`RateLimit-Limit`: requests allowed in the window."""
        return _int_header(self.headers, "ratelimit-limit")

    @property
    def remaining(self) -> int | None:
        """`RateLimit-Remaining`: requests left in the window."""
        return _int_header(self.headers, "ratelimit-remaining")

    @property
    def reset(self) -> int | None:
        """`RateLimit-Reset`: seconds until the window resets."""
        return _int_header(self.headers, "ratelimit-reset")


class QuotaExceeded(RateLimited):
    """429 `quota_exceeded`: a daily quota of the key (executions or CPU-seconds) is used up."""

    @property
    def quota(self) -> str | None:
        """The quota's name, when the service gives it in `details`."""
        return _detail(self.details, "quota")


class ServerError(APIError):
    """500 or another 5xx: the service failed unexpectedly."""


class Unavailable(_Retryable):
    """503: a part the request needs is down (sandbox runtime, image, audit store)."""


_BY_TYPE: dict[str, type[APIError]] = {
    "policy_refused": PolicyRefused,
    "session_not_found": SessionNotFound,
    "session_ended": SessionEnded,
    "quota_exceeded": QuotaExceeded,
}
_BY_STATUS: dict[int, type[APIError]] = {
    400: InvalidRequest,
    401: AuthError,
    403: Forbidden,
    404: NotFound,
    410: SessionEnded,
    413: PayloadTooLarge,
    415: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
    503: Unavailable,
}


def error_from_response(response: httpx.Response) -> APIError:
    """The exception for an error answer (its body must have been read)."""
    status = response.status_code
    try:
        body = response.json()
        error = body["error"]
        type_, message = str(error["type"]), str(error["message"])
        details, request_id = error.get("details"), body.get("request_id")
    except (ValueError, KeyError, TypeError):
        # Not the service's body (a proxy in between, a crash): say what came, briefly.
        type_ = response.reason_phrase.lower().replace(" ", "_") or "error"
        message = f"HTTP {status} {response.reason_phrase}: {response.text[:200]}".rstrip(": ")
        details, request_id = None, None
    request_id = request_id or response.headers.get("x-request-id")
    default = ServerError if status >= 500 else APIError
    cls = _BY_TYPE.get(type_) or _BY_STATUS.get(status, default)
    return cls(
        status, type_, message, details=details, request_id=request_id, headers=response.headers
    )


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: delta-seconds or an HTTP date; None if absent or bad."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    try:
        return int(headers[name])
    except (KeyError, ValueError):
        return None


def _detail(details: Any, name: str) -> str | None:
    """A named value from `details`, whether a mapping or a list of mappings."""
    items = details if isinstance(details, list) else [details]
    for item in items:
        if isinstance(item, dict) and item.get(name) is not None:
            return str(item[name])
    return None
