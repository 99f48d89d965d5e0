"""Unit tests of what the SDK sends for the second-wave calls (DESIGN's wire format), on an
httpx MockTransport that records each request. The real service's answers to them are in
test_sessions.py, test_executions.py and test_rich_results.py (waiting for the server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest
from sandgate_client import AsyncSandgate, Sandgate

SESSION = {"session_id": "s 1", "expires_at": "2030-01-01T00:00:00Z"}
RESULT = {"execution_id": "e1", "status": "ok", "exit_code": 0, "execution_count": 1}
Seen = list[tuple[str, str, bytes]]


def _answer(request: httpx.Request) -> httpx.Response:
    method, path = request.method, request.url.raw_path.decode()
    if method == "POST" and path == "/sessions":
        return httpx.Response(201, json=SESSION)
    if method == "GET" and path == "/sessions":
        return httpx.Response(200, json=[SESSION])
    if path.endswith("/execute"):
        return httpx.Response(200, json=RESULT)
    if method == "PUT":
        return httpx.Response(201, json={"path": "d/x y.bin", "size": 3, "sha256": "ab"})
    if method == "GET" and "/files/" in path:
        return httpx.Response(200, content=b"\x00\x01")
    if method == "DELETE":
        return httpx.Response(204)
    if path == "/executions":
        return httpx.Response(202, json={"execution_id": "q1", "status": "queued"})
    return httpx.Response(200, json={"execution_id": "q1", "status": "done", "response": RESULT})


def _recording(seen: Seen) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path.decode(), request.content))
        return _answer(request)

    return handler


def test_when_a_session_is_used_then_each_call_goes_where_the_contract_says() -> None:
    seen: Seen = []
    http = httpx.Client(transport=httpx.MockTransport(_recording(seen)))
    client = Sandgate("http://127.0.0.1:1", "k", http_client=http)
    with client.sessions.create(language="python", ttl_s=60) as session:
        assert session.run("x = 1", timeout_s=5).execution_count == 1
        assert session.files.write("d/x y.bin", b"abc").size == 3
        assert session.files.read("d/x y.bin") == b"\x00\x01"
    assert [(m, p) for m, p, _ in seen] == [
        ("POST", "/sessions"),
        ("POST", "/sessions/s%201/execute"),
        ("PUT", "/sessions/s%201/files/d/x%20y.bin"),
        ("GET", "/sessions/s%201/files/d/x%20y.bin"),
        ("DELETE", "/sessions/s%201"),
    ]
    assert json.loads(seen[0][2]) == {"language": "python", "ttl_s": 60}
    assert json.loads(seen[1][2]) == {"code": "x = 1", "timeout_s": 5}
    assert seen[2][2] == b"abc"


def test_when_the_body_of_a_session_block_raises_then_delete_is_still_sent() -> None:
    seen: Seen = []

    async def scenario() -> None:
        transport = httpx.MockTransport(_recording(seen))
        async with httpx.AsyncClient(transport=transport) as http:
            client = AsyncSandgate("http://127.0.0.1:1", "k", http_client=http)
            async with client.sessions.create() as session:
                assert session.id == "s 1"
                raise KeyError("agent bug")

    with pytest.raises(KeyError):
        asyncio.run(scenario())
    assert seen[-1][:2] == ("DELETE", "/sessions/s%201")


def test_when_an_execution_is_submitted_then_the_body_has_the_webhook_and_binary_files() -> None:
    seen: Seen = []
    http = httpx.Client(transport=httpx.MockTransport(_recording(seen)))
    client = Sandgate("http://127.0.0.1:1", "k", http_client=http)
    queued = client.executions.submit(
        "print(1)",
        webhook_url="http://127.0.0.1:9/hook",
        files={"b.bin": b"\xff", "t": "x"},
        outputs=["*.csv"],
    )
    assert queued.status == "queued"
    assert client.executions.wait("q1", timeout=5).ok
    body = json.loads(seen[0][2])
    assert body["webhook_url"] == "http://127.0.0.1:9/hook" and body["outputs"] == ["*.csv"]
    assert body["files"] == {"b.bin": {"content_base64": "/w=="}, "t": "x"}
    assert seen[1][:2] == ("GET", "/executions/q1")
