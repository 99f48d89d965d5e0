"""`sandgate-mcp` driven by the `mcp` SDK's own client, over stdio and over streamable HTTP,
forwarding to the real service. The session and figure tools are in test_mcp_sessions.py."""

from __future__ import annotations

import asyncio

import pytest

from tests.clients._mcp import http_client, mcp_http_server, stdio_client, text_of
from tests.helpers import LiveServer

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

TOOLS = {
    "execute_code",
    "create_session",
    "run_in_session",
    "close_session",
    "upload_file",
    "download_file",
    "screen_text",
}


def test_when_listed_over_stdio_then_every_tool_says_what_the_sandbox_cannot_do(
    server: LiveServer,
) -> None:
    async def listed() -> dict[str, tuple[str, dict[str, object]]]:
        async with stdio_client(server) as client:
            tools = (await client.list_tools()).tools
            return {t.name: (t.description or "", t.input_schema) for t in tools}

    tools = asyncio.run(listed())
    assert set(tools) == TOOLS
    description, schema = tools["execute_code"]
    for fact in ("network", "CANNOT", "256 MB", "10 s", "session", "screened"):
        assert fact in description, fact
    assert schema["required"] == ["code"]
    assert set(schema["properties"]) == {"code", "language", "timeout_s"}  # type: ignore[arg-type]
    assert tools["screen_text"][1]["properties"]["stage"]["enum"] == ["input", "output", "code"]  # type: ignore[index]


def test_when_tools_are_called_over_stdio_then_they_answer_from_the_service(
    server: LiveServer,
) -> None:
    async def calls() -> tuple[str, str, bool]:
        async with stdio_client(server) as client:
            ran = await client.call_tool("execute_code", {"code": "print(6 * 7)"})
            screened = await client.call_tool(
                "screen_text", {"text": "reach me at jane.doe@example.com", "stage": "output"}
            )
            return text_of(ran), text_of(screened), ran.is_error

    ran, screened, failed = asyncio.run(calls())
    assert not failed and "status: ok" in ran and "42" in ran
    assert "verdict: redact" in screened and "jane.doe@example.com" not in screened


def test_when_the_service_refuses_then_the_tool_error_carries_its_message(
    server: LiveServer,
) -> None:
    async def refused() -> tuple[bool, str, bool, str]:
        async with stdio_client(server, key="sg_not_a_valid_key") as client:
            bad_key = await client.call_tool("execute_code", {"code": "print(1)"})
        async with stdio_client(server) as client:
            looser = await client.call_tool("execute_code", {"code": "", "language": "cobol"})
        return bad_key.is_error, text_of(bad_key), looser.is_error, text_of(looser)

    bad_key, bad_key_text, invalid, invalid_text = asyncio.run(refused())
    assert bad_key and "invalid or revoked API key" in bad_key_text
    assert invalid and "invalid request" in invalid_text


def test_when_called_over_http_then_the_caller_s_key_is_used(server: LiveServer) -> None:
    async def calls(url: str) -> tuple[set[str], str, bool, str]:
        async with http_client(url, server.key) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            ran = await client.call_tool("execute_code", {"code": "print('over http')"})
        async with http_client(url, None) as client:
            keyless = await client.call_tool("execute_code", {"code": "print(1)"})
        return names, text_of(ran), keyless.is_error, text_of(keyless)

    with mcp_http_server(server) as url:
        names, ran, keyless_failed, keyless = asyncio.run(calls(url))
    assert names == TOOLS and "over http" in ran
    assert keyless_failed and "no API key" in keyless
