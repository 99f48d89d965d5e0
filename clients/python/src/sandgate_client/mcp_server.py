"""`sandgate-mcp`: an MCP server (official `mcp` SDK) whose tools forward to a Sandgate service.

Over stdio it acts with `SANDGATE_API_KEY`. Over streamable HTTP each call acts with the
caller's own key when its request carries `Authorization: Bearer <key>`, else with
`SANDGATE_API_KEY` if set: whoever can reach that port then acts with that key, so it listens
on 127.0.0.1 unless told otherwise. Service errors come back as tool errors carrying the
service's message; figures as image content.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import mimetypes
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, cast

import click
import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ImageContent, TextContent
from pydantic import Field

from sandgate_client._calls import ExecuteOptions, SessionOptions
from sandgate_client._tooling import (
    CODE,
    EXECUTE_DESCRIPTION,
    LANGUAGE,
    SCREEN_DESCRIPTION,
    SESSION_NOTE,
    STAGE,
    TIMEOUT,
    describe_execution,
    describe_screening,
    options_of,
)
from sandgate_client.async_client import AsyncSandgate, AsyncSession
from sandgate_client.errors import SandgateError
from sandgate_client.models import ExecuteResult, SessionInfo

__all__ = ["build_server", "main"]

Content = TextContent | ImageContent
SessionId = Annotated[str, Field(description="The id `create_session` returned.")]
FilePath = Annotated[str, Field(description="A path relative to the session's /work.")]
INSTRUCTIONS = (
    "Tools of a Sandgate service: run untrusted code in gVisor sandboxes without network "
    "access, keep a sandbox between calls in a session, and screen text for PII, secrets and "
    "prompt injection. Close the sessions you create."
)


@dataclass
class _State:
    http: httpx.AsyncClient


@contextlib.contextmanager
def _as_tool_errors() -> Iterator[None]:
    """The service's errors as tool errors: the model reads the service's message."""
    try:
        yield
    except SandgateError as exc:
        raise ToolError(str(exc)) from exc


def _content(result: ExecuteResult) -> list[Content]:
    figures = [
        ImageContent(type="image", data=str(f.data["image/png"]), mime_type="image/png")
        for f in result.figures
    ]
    text = TextContent(type="text", text=describe_execution(result, figures_attached=True))
    return [text, *figures]


def _file_content(path: str, data: bytes) -> Content:
    kind = mimetypes.guess_type(path)[0] or ""
    if kind.startswith("image/"):
        return ImageContent(type="image", data=base64.b64encode(data).decode(), mime_type=kind)
    try:
        return TextContent(type="text", text=data.decode("utf-8"))
    except UnicodeDecodeError:
        encoded = base64.b64encode(data).decode()
        return TextContent(type="text", text=f"{len(data)} bytes, base64: {encoded}")


def build_server(
    url: str | None = None, api_key: str | None = None, image: str | None = None
) -> MCPServer[Any]:
    """The MCP server, forwarding to the service at `url` (default `SANDGATE_URL`); `image`
    is the sandbox image of every execution and session (default: the service's)."""
    chosen: ExecuteOptions = {"image": image} if image else {}

    @contextlib.asynccontextmanager
    async def lifespan(_server: MCPServer[Any]) -> AsyncIterator[_State]:
        async with httpx.AsyncClient() as http:
            yield _State(http)

    server: MCPServer[Any] = MCPServer(
        "sandgate", instructions=INSTRUCTIONS, lifespan=lifespan, log_level="WARNING"
    )

    def sandgate(ctx: Context) -> AsyncSandgate:
        auth = (ctx.headers or {}).get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else api_key
        state = cast(_State, ctx.request_context.lifespan_context)
        with _as_tool_errors():
            return AsyncSandgate(url, key, http_client=state.http)

    def session(ctx: Context, session_id: str) -> AsyncSession:
        return AsyncSession(sandgate(ctx), SessionInfo(session_id=session_id))

    @server.tool(description=EXECUTE_DESCRIPTION)
    async def execute_code(
        code: Annotated[str, Field(description=CODE)],
        ctx: Context,
        language: Annotated[str, Field(description=LANGUAGE)] = "python",
        timeout_s: Annotated[float | None, Field(gt=0, description=TIMEOUT)] = None,
    ) -> list[Content]:
        with _as_tool_errors():
            options = options_of(language, timeout_s) | chosen
            result = await sandgate(ctx).execute(code, **options)
            return _content(result)

    @server.tool(
        description=f"Start a sandbox session and return its id. {SESSION_NOTE}",
        structured_output=False,
    )
    async def create_session(
        ctx: Context, language: Annotated[str, Field(description=LANGUAGE)] = "python"
    ) -> str:
        with _as_tool_errors():
            options: SessionOptions = {"language": language}
            if image:
                options["image"] = image
            started = await sandgate(ctx).sessions.create(**options)
        expires = (
            f", expires {started.info.expires_at.isoformat()}" if started.info.expires_at else ""
        )
        return f"session_id: {started.id}{expires}"

    @server.tool(description=f"Run code in a session. {SESSION_NOTE} {EXECUTE_DESCRIPTION}")
    async def run_in_session(
        session_id: SessionId, code: Annotated[str, Field(description=CODE)], ctx: Context
    ) -> list[Content]:
        with _as_tool_errors():
            return _content(await session(ctx, session_id).run(code))

    @server.tool(
        description="End a session and free its sandbox; its files are gone after.",
        structured_output=False,
    )
    async def close_session(session_id: SessionId, ctx: Context) -> str:
        with _as_tool_errors():
            await session(ctx, session_id).close()
        return f"session {session_id} closed"

    @server.tool(
        description="Write a file (its bytes as base64) into a session's /work.",
        structured_output=False,
    )
    async def upload_file(
        session_id: SessionId,
        path: FilePath,
        content_base64: Annotated[str, Field(description="The file's bytes, base64-encoded.")],
        ctx: Context,
    ) -> str:
        try:
            data = base64.b64decode(content_base64, validate=True)
        except (binascii.Error, ValueError):
            raise ToolError("content_base64 is not valid base64") from None
        with _as_tool_errors():
            info = await session(ctx, session_id).files.write(path, data)
        return f"wrote {info.path} ({info.size} bytes, sha256 {info.sha256})"

    @server.tool(
        description="Read a file from a session's /work: images come back as images, UTF-8 "
        "text as text, anything else as base64."
    )
    async def download_file(session_id: SessionId, path: FilePath, ctx: Context) -> list[Content]:
        with _as_tool_errors():
            return [_file_content(path, await session(ctx, session_id).files.read(path))]

    @server.tool(description=SCREEN_DESCRIPTION, structured_output=False)
    async def screen_text(
        text: Annotated[str, Field(description="The text to screen.")],
        ctx: Context,
        stage: Annotated[Literal["input", "output", "code"], Field(description=STAGE)] = "input",
    ) -> str:
        with _as_tool_errors():
            return describe_screening(await sandgate(ctx).screen(text, stage))

    return server


@click.command()
@click.option(
    "--transport",
    type=click.Choice(["stdio", "streamable-http"]),
    default="stdio",
    show_default=True,
)
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP: where to listen.")
@click.option("--port", default=8765, show_default=True, help="HTTP: the port (path /mcp).")
@click.option("--url", envvar="SANDGATE_URL", help="The Sandgate service [SANDGATE_URL].")
@click.option("--image", help="Sandbox image of every run (python-data: numpy, matplotlib).")
def main(transport: str, host: str, port: int, url: str | None, image: str | None) -> None:
    """An MCP server for a Sandgate service; the key comes from SANDGATE_API_KEY."""
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per call would bury the rest
    server = build_server(url, image=image)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=host, port=port)


if __name__ == "__main__":
    main()
