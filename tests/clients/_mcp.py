"""Helpers of the MCP tests: the `sandgate-mcp` script over stdio or streamable HTTP, driven by
the `mcp` SDK's own client."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from tests.helpers import LiveServer, free_port

__all__ = ["http_client", "mcp_http_server", "stdio_client", "text_of"]

MCP_SCRIPT = str(Path(sys.executable).parent / "sandgate-mcp")


def stdio_client(live: LiveServer, key: str | None = None, image: str | None = None) -> Client:
    """An MCP client that starts `sandgate-mcp` over stdio, acting with `key`."""
    env = {"SANDGATE_URL": live.url, "SANDGATE_API_KEY": key or live.key}
    args = ["--image", image] if image else []
    return Client(StdioServerParameters(command=MCP_SCRIPT, args=args, env=env))


@contextlib.contextmanager
def mcp_http_server(live: LiveServer) -> Iterator[str]:
    """`sandgate-mcp --transport streamable-http` with no key of its own; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [MCP_SCRIPT, "--transport", "streamable-http", "--port", str(port)],
        env={"SANDGATE_URL": live.url, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            assert time.monotonic() < deadline, "sandgate-mcp did not listen within 30 s"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()


@contextlib.asynccontextmanager
async def http_client(url: str, key: str | None) -> AsyncIterator[Client]:
    """An MCP client over streamable HTTP, sending `key` as its bearer token when given."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


def text_of(result: CallToolResult) -> str:
    """The text blocks of a tool result, joined."""
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))
