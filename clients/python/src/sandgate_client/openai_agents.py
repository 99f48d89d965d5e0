"""An OpenAI Agents SDK function tool that runs code in Sandgate
(`pip install 'sandgate-client[openai-agents]'`).

    from agents import Agent
    from sandgate_client.openai_agents import execute_tool
    agent = Agent(name="analyst", tools=[execute_tool()])  # SANDGATE_URL, SANDGATE_API_KEY

A service error reaches the model as the tool's output, with the service's own message in it.
"""

from __future__ import annotations

from typing import Annotated, Any

from agents import FunctionTool, RunContextWrapper, function_tool
from pydantic import Field

from sandgate_client._tooling import (
    CODE,
    EXECUTE_DESCRIPTION,
    LANGUAGE,
    TIMEOUT,
    describe_execution,
    options_of,
)
from sandgate_client.async_client import AsyncSandgate
from sandgate_client.errors import SandgateError

__all__ = ["execute_tool"]


def execute_tool(client: AsyncSandgate | None = None) -> FunctionTool:
    """The `execute_code` function tool, on `client` (default: one from the environment)."""
    sandgate = client or AsyncSandgate()

    async def execute_code(
        code: Annotated[str, Field(description=CODE)],
        language: Annotated[str, Field(description=LANGUAGE)] = "python",
        timeout_s: Annotated[float | None, Field(description=TIMEOUT)] = None,
    ) -> str:
        result = await sandgate.execute(code, **options_of(language, timeout_s))
        return describe_execution(result)

    return function_tool(
        execute_code,
        name_override="execute_code",
        description_override=EXECUTE_DESCRIPTION,
        failure_error_function=_failure,
    )


def _failure(_context: RunContextWrapper[Any], error: Exception) -> str:
    """What the model reads when the call failed: the service's own message, when it has one."""
    if isinstance(error, SandgateError):
        return f"the sandbox service refused or failed: {error}"
    return f"the tool failed: {type(error).__name__}"
