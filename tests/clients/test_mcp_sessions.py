"""The MCP session and file tools, and a figure as image content."""

from __future__ import annotations

import asyncio
import base64

import pytest
from mcp.types import ImageContent

from tests.clients._mcp import stdio_client, text_of
from tests.clients.test_rich_results import PLOT, PNG_MAGIC
from tests.helpers import LiveServer

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


def test_when_the_session_tools_are_called_then_a_session_lives_and_ends(
    server: LiveServer,
) -> None:

    async def scenario() -> tuple[str, str, str, bool, str]:
        async with stdio_client(server) as client:
            created = text_of(await client.call_tool("create_session", {}))
            session_id = created.split()[1].rstrip(",")
            payload = base64.b64encode(b"21").decode()
            await client.call_tool(
                "upload_file",
                {"session_id": session_id, "path": "n.txt", "content_base64": payload},
            )
            ran = await client.call_tool(
                "run_in_session",
                {"session_id": session_id, "code": "print(int(open('n.txt').read()) * 2)"},
            )
            down = await client.call_tool(
                "download_file", {"session_id": session_id, "path": "n.txt"}
            )
            closed = await client.call_tool("close_session", {"session_id": session_id})
            after = await client.call_tool(
                "run_in_session", {"session_id": session_id, "code": "print(1)"}
            )
            return text_of(ran), text_of(down), text_of(closed), after.is_error, text_of(after)

    ran, down, closed, failed_after, after = asyncio.run(scenario())
    assert "42" in ran and down == "21" and "closed" in closed
    assert failed_after and "session_ended" in after


def test_when_code_draws_a_figure_then_it_arrives_as_image_content(server: LiveServer) -> None:
    key = server.new_key("mcp-analyst", tenant="finance")

    async def scenario() -> list[ImageContent]:
        async with stdio_client(server, key=key, image="python-data") as client:
            result = await client.call_tool("execute_code", {"code": PLOT})
            return [block for block in result.content if isinstance(block, ImageContent)]

    images = asyncio.run(scenario())
    assert images and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(PNG_MAGIC)
