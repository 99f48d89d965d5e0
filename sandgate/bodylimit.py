"""Refuses request bodies over the configured size with 413, before they are buffered."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandgate.errors import ERROR, PayloadTooLarge, error_body

__all__ = ["BodyLimitMiddleware"]


class BodyLimitMiddleware:
    """Checks `Content-Length` up front and counts streamed bytes for chunked bodies."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"request body is larger than {self.max_bytes} bytes"
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            state = scope.setdefault("state", {})
            state[ERROR] = (PayloadTooLarge.type, message)
            body = error_body(None, PayloadTooLarge.type, message)
            body["request_id"] = state.get("request_id")
            await JSONResponse(body, status_code=413)(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI turns other errors raised while reading a body into a 400.
                    raise HTTPException(413, message)
            return msg

        await self.app(scope, counting_receive, send)
