"""Every call of the wire format as data: method, path, body and how to read the answer.

The sync and async clients only send these; what a call is lives here once.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypedDict, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from sandgate_client.errors import ProtocolError
from sandgate_client.models import (
    ExecuteResult,
    ExecutionState,
    FileInfo,
    ScreenResult,
    SessionInfo,
    SessionResult,
)

__all__ = ["Call", "ExecuteOptions", "SessionOptions", "NDJSON"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
NDJSON = "application/x-ndjson"


class ExecuteOptions(TypedDict, total=False):
    """What `execute`, `stream`, `session.run` and `executions.submit` accept beside the code."""

    language: str
    """`python` (default), `node` or `bash`, as the policy allows."""
    stdin: str
    """Text fed to the program's standard input."""
    timeout_s: float
    """Wall-clock limit in seconds; at most the policy's."""
    files: Mapping[str, str | bytes]
    """Relative path -> content, written into `/work` first (bytes go as base64)."""
    outputs: list[str]
    """Glob patterns under `/work` whose files come back in `result.files`."""
    image: str
    """Sandbox image (`python`, `python-data`), as the policy allows."""
    policy: str
    """A stricter policy to run under, by name."""


class SessionOptions(TypedDict, total=False):
    """What `sessions.create` accepts."""

    language: str
    image: str
    policy: str
    idle_timeout_s: float
    """The session ends after this long without a call."""
    ttl_s: float
    """The session ends this long after it started, whatever happens."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP call and the reader of its successful answer."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    json: Any = None
    content: bytes | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    model: type[BaseModel] | None = None
    """For executions: the answer's model, which a streamed `end` event also holds."""


def _model(cls: type[M]) -> Callable[[httpx.Response], M]:
    def read(response: httpx.Response) -> M:
        try:
            return cls.model_validate_json(response.content)
        except ValidationError as exc:
            raise ProtocolError(
                f"unexpected answer to {response.request.url.path}: {exc}"
            ) from None

    return read


def _models(cls: type[M]) -> Callable[[httpx.Response], list[M]]:
    adapter = TypeAdapter(list[cls])  # type: ignore[valid-type]

    def read(response: httpx.Response) -> list[M]:
        body = response.json()
        items = body.get("sessions", body.get("executions")) if isinstance(body, dict) else body
        try:
            found: list[M] = adapter.validate_python(items)
        except ValidationError as exc:
            raise ProtocolError(
                f"unexpected answer to {response.request.url.path}: {exc}"
            ) from None
        return found

    return read


def _nothing(_response: httpx.Response) -> None:
    return None


def _bytes(response: httpx.Response) -> bytes:
    return response.content


def _body(code: str, options: ExecuteOptions) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, **options}
    files = options.get("files")
    if files:
        body["files"] = {
            path: {"content_base64": base64.b64encode(data).decode()}
            if isinstance(data, bytes)
            else data
            for path, data in files.items()
        }
    return body


def _path(path: str) -> str:
    return quote(path.lstrip("/"), safe="/")


def execute(code: str, options: ExecuteOptions) -> Call[ExecuteResult]:
    """`POST /execute`."""
    return Call(
        "POST", "/execute", _model(ExecuteResult), _body(code, options), model=ExecuteResult
    )


def screen(text: str, stage: str, policy: str | None) -> Call[ScreenResult]:
    """`POST /screen`."""
    body = {"text": text, "stage": stage, **({"policy": policy} if policy else {})}
    return Call("POST", "/screen", _model(ScreenResult), body)


def create_session(options: SessionOptions) -> Call[SessionInfo]:
    """`POST /sessions`."""
    return Call("POST", "/sessions", _model(SessionInfo), dict(options))


def get_session(session_id: str) -> Call[SessionInfo]:
    """`GET /sessions/{id}`."""
    return Call("GET", f"/sessions/{quote(session_id, safe='')}", _model(SessionInfo))


def list_sessions() -> Call[list[SessionInfo]]:
    """`GET /sessions`: the caller's tenant's sessions."""
    return Call("GET", "/sessions", _models(SessionInfo))


def delete_session(session_id: str) -> Call[None]:
    """`DELETE /sessions/{id}`."""
    return Call("DELETE", f"/sessions/{quote(session_id, safe='')}", _nothing)


def run_in_session(session_id: str, code: str, options: ExecuteOptions) -> Call[SessionResult]:
    """`POST /sessions/{id}/execute`."""
    path = f"/sessions/{quote(session_id, safe='')}/execute"
    return Call("POST", path, _model(SessionResult), _body(code, options), model=SessionResult)


def write_file(session_id: str, path: str, data: bytes) -> Call[FileInfo]:
    """`PUT /sessions/{id}/files/{path}` with the raw bytes."""
    where = f"/sessions/{quote(session_id, safe='')}/files/{_path(path)}"
    return Call("PUT", where, _model(FileInfo), content=data)


def read_file(session_id: str, path: str) -> Call[bytes]:
    """`GET /sessions/{id}/files/{path}`: the raw bytes."""
    return Call("GET", f"/sessions/{quote(session_id, safe='')}/files/{_path(path)}", _bytes)


def submit(code: str, options: ExecuteOptions, webhook_url: str | None) -> Call[ExecutionState]:
    """`POST /executions`: queue an execution (202)."""
    body = _body(code, options) | ({"webhook_url": webhook_url} if webhook_url else {})
    return Call("POST", "/executions", _model(ExecutionState), body)


def get_execution(execution_id: str) -> Call[ExecutionState]:
    """`GET /executions/{id}`."""
    return Call("GET", f"/executions/{quote(execution_id, safe='')}", _model(ExecutionState))


def list_executions(status: str | None) -> Call[list[ExecutionState]]:
    """`GET /executions`, optionally `?status=dead` (the dead letters)."""
    params = {"status": status} if status else {}
    return Call("GET", "/executions", _models(ExecutionState), params=params)
