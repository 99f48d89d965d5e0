"""What the OpenAPI document says routes answer: the real error body for each error status, and
the streamed content type.

Every route lists the error statuses it can answer (`errors(...)`), each with the one error
schema (`ErrorBody`, whose `error` is required) as `application/json`, whatever the route's own
media type; FastAPI's own `HTTPValidationError` never appears, because every route that
validates input lists 422 itself (a test checks both).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from sandgate.models import ErrorBody, ErrorDetail

__all__ = ["AUTH", "NDJSONStream", "errors", "install_openapi"]

_WHY = {
    400: "The body cannot be read: not JSON, or not UTF-8.",
    401: "No API key, or an unknown, revoked or expired one.",
    403: "The key lacks the scope, or asked for a policy it may not use (`policy_refused`).",
    404: "No such resource.",
    405: "The route does not take this method.",
    409: "The resource is busy with another request.",
    410: "The resource has ended.",
    413: "The body, the code or the files are larger than allowed.",
    415: "The body is not JSON.",
    422: "The input breaks the schema or a rule of the policy; `details` name each field.",
    429: "No sandbox, rate or quota left now: retry after `Retry-After` seconds.",
    501: "The configured sandbox backend cannot do this; the message names one that can.",
    503: "A part the request needs is down (sandbox runtime, image, audit log): nothing was done.",
}
# What every authenticated route can answer besides its own errors.
AUTH = (401, 503)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route that can answer these error statuses (plus 401 and 503)."""
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {
        status: {"description": _WHY[status], "content": body}
        for status in sorted({*statuses, *AUTH})
    }


class NDJSONStream(StreamingResponse):
    """A streamed answer of one JSON object a line."""

    media_type = "application/x-ndjson"


def install_openapi(app: FastAPI) -> None:
    """Put the error schemas `errors()` refers to into the app's OpenAPI components."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            found = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components |= found.pop("$defs", {})
            components[ErrorBody.__name__] = found
            assert ErrorDetail.__name__ in components
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
