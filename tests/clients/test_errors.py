"""Unit tests of the error mapping: each error body and status to its exception class."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest
from sandgate_client import errors
from sandgate_client.errors import error_from_response, parse_retry_after


def _answer(
    status: int, type_: str | None, headers: dict[str, str] | None = None, details: object = None
) -> httpx.Response:
    body: object = (
        {
            "error": {"type": type_, "message": f"said {type_}", "details": details},
            "request_id": "rid-1",
        }
        if type_
        else "<html>bad gateway</html>"
    )
    request = httpx.Request("POST", "http://127.0.0.1/execute")
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers, request=request)
    return httpx.Response(status, json=body, headers=headers, request=request)


@pytest.mark.parametrize(
    ("status", "type_", "expected"),
    [
        (401, "unauthorized", errors.AuthError),
        (403, "forbidden", errors.Forbidden),
        (403, "policy_refused", errors.PolicyRefused),
        (404, "not_found", errors.NotFound),
        (404, "session_not_found", errors.SessionNotFound),
        (410, "session_ended", errors.SessionEnded),
        (413, "payload_too_large", errors.PayloadTooLarge),
        (415, "unsupported_media_type", errors.InvalidRequest),
        (422, "invalid_request", errors.InvalidRequest),
        (422, "invalid_input", errors.InvalidRequest),
        (429, "busy", errors.RateLimited),
        (429, "rate_limited", errors.RateLimited),
        (429, "quota_exceeded", errors.QuotaExceeded),
        (500, "internal_error", errors.ServerError),
        (502, None, errors.ServerError),
        (503, "unavailable", errors.Unavailable),
        (418, "teapot", errors.APIError),
    ],
)
def test_when_an_error_answer_arrives_then_its_exception_is_the_most_specific(
    status: int, type_: str | None, expected: type[errors.APIError]
) -> None:
    exc = error_from_response(_answer(status, type_))
    assert type(exc) is expected and exc.status_code == status
    if type_:
        assert (exc.type, exc.message, exc.request_id) == (type_, f"said {type_}", "rid-1")
        assert str(exc) == f"said {type_} ({status} {type_})"
    else:
        assert "bad gateway" in exc.message


def test_when_429_carries_rate_limit_headers_then_they_are_read() -> None:
    headers = {
        "Retry-After": "7",
        "RateLimit-Limit": "60",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "7",
    }
    exc = error_from_response(_answer(429, "rate_limited", headers))
    assert isinstance(exc, errors.RateLimited)
    assert (exc.retry_after, exc.limit, exc.remaining, exc.reset) == (7.0, 60, 0, 7)


def test_when_details_name_a_reason_or_quota_then_the_exception_exposes_it() -> None:
    ended = error_from_response(_answer(410, "session_ended", details={"reason": "idle"}))
    assert isinstance(ended, errors.SessionEnded) and ended.reason == "idle"
    quota = error_from_response(_answer(429, "quota_exceeded", details=[{"quota": "cpu_s"}]))
    assert isinstance(quota, errors.QuotaExceeded) and quota.quota == "cpu_s"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-4", 0.0), (None, None), ("soon", None), ("", None)],
)
def test_when_retry_after_is_in_seconds_or_garbage_then_it_parses_or_is_none(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value) == expected


def test_when_retry_after_is_an_http_date_then_it_is_seconds_from_now() -> None:
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= (parse_retry_after(later) or 0) <= 30
