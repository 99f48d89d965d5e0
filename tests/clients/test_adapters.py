"""The LangChain tool and the OpenAI Agents SDK function tool, invoked directly (no model)
against the real service, and their argument schemas as a model would see them."""

from __future__ import annotations

import asyncio
import json

import pytest
from agents.tool_context import ToolContext
from langchain_core.messages import ToolMessage
from sandgate_client import AsyncSandgate, ExecuteResult, Sandgate, openai_agents
from sandgate_client import langchain as lc

from tests.helpers import LiveServer

pytestmark = pytest.mark.sandbox


def test_when_the_langchain_tool_is_built_then_its_schema_names_the_arguments(
    server: LiveServer,
) -> None:
    with Sandgate(server.url, server.key) as client:
        tool = lc.execute_tool(client)
    schema = tool.tool_call_schema.model_json_schema()  # type: ignore[union-attr]
    assert tool.name == "execute_code" and "CANNOT" in tool.description
    assert schema["required"] == ["code"]
    assert schema["properties"]["language"]["default"] == "python"
    assert schema["properties"]["timeout_s"]["anyOf"][0]["exclusiveMinimum"] == 0


def test_when_the_langchain_tool_is_invoked_then_it_runs_sync_and_async(
    server: LiveServer,
) -> None:
    call = {"name": "execute_code", "args": {"code": "print(6 * 7)"}, "id": "c1"}
    with Sandgate(server.url, server.key) as client:
        message = lc.execute_tool(client).invoke({**call, "type": "tool_call"})
    assert isinstance(message, ToolMessage) and "42" in str(message.content)
    assert isinstance(message.artifact, ExecuteResult) and message.artifact.ok

    async def ainvoke() -> str:
        async with AsyncSandgate(server.url, server.key) as client:
            out: str = await lc.execute_tool(async_client=client).ainvoke({"code": "print(1)"})
            return out

    assert "status: ok" in asyncio.run(ainvoke())


def test_when_the_service_refuses_then_the_langchain_tool_returns_its_message(
    server: LiveServer,
) -> None:
    with Sandgate(server.url, "sg_not_a_key") as client:
        assert "invalid or revoked API key" in lc.execute_tool(client).invoke({"code": "print(1)"})


def test_when_the_agents_tool_is_built_then_its_strict_schema_names_the_arguments(
    server: LiveServer,
) -> None:
    tool = openai_agents.execute_tool(AsyncSandgate(server.url, server.key))
    schema = tool.params_json_schema
    assert tool.name == "execute_code" and "CANNOT" in tool.description
    assert tool.strict_json_schema and schema["additionalProperties"] is False
    assert set(schema["required"]) == {"code", "language", "timeout_s"}  # strict: all listed
    assert schema["properties"]["code"]["type"] == "string"


def _invoke(live: LiveServer, key: str, arguments: dict[str, object]) -> str:
    raw = json.dumps(arguments)
    context = ToolContext(
        context=None, tool_name="execute_code", tool_call_id="c1", tool_arguments=raw
    )

    async def invoke() -> str:
        async with AsyncSandgate(live.url, key) as client:
            return str(await openai_agents.execute_tool(client).on_invoke_tool(context, raw))

    return asyncio.run(invoke())


def test_when_the_agents_tool_is_invoked_then_it_runs_the_code(server: LiveServer) -> None:
    out = _invoke(
        server, server.key, {"code": "print(6 * 7)", "language": "python", "timeout_s": None}
    )
    assert "status: ok" in out and "42" in out


def test_when_the_service_refuses_then_the_agents_tool_reports_its_message(
    server: LiveServer,
) -> None:
    out = _invoke(
        server, "sg_not_a_key", {"code": "print(1)", "language": "python", "timeout_s": None}
    )
    assert "invalid or revoked API key" in out
