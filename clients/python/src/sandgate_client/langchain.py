"""A LangChain tool that runs code in Sandgate (`pip install 'sandgate-client[langchain]'`).

    from sandgate_client.langchain import execute_tool
    tools = [execute_tool()]  # SANDGATE_URL, SANDGATE_API_KEY

The model reads the run's description (status, output, results); the `ExecuteResult` itself
is the tool message's artifact (figures, files). Service errors come back to the model as the
tool's output, with the service's message.
"""

from __future__ import annotations

from langchain_core.tools import StructuredTool, ToolException

from sandgate_client._tooling import (
    EXECUTE_DESCRIPTION,
    ExecuteCodeArgs,
    describe_execution,
    options_of,
)
from sandgate_client.async_client import AsyncSandgate
from sandgate_client.client import Sandgate
from sandgate_client.errors import SandgateError
from sandgate_client.models import ExecuteResult

__all__ = ["execute_tool"]


def execute_tool(
    client: Sandgate | None = None, async_client: AsyncSandgate | None = None
) -> StructuredTool:
    """The `execute_code` tool, on the given clients (default: both, from the environment)."""
    if client is None and async_client is None:
        client, async_client = Sandgate(), AsyncSandgate()

    def run(
        code: str, language: str = "python", timeout_s: float | None = None
    ) -> tuple[str, ExecuteResult]:
        if client is None:
            raise ToolException("this tool was built with an async client only: use ainvoke")
        try:
            result = client.execute(code, **options_of(language, timeout_s))
        except SandgateError as exc:
            raise ToolException(str(exc)) from exc
        return describe_execution(result), result

    async def arun(
        code: str, language: str = "python", timeout_s: float | None = None
    ) -> tuple[str, ExecuteResult]:
        if async_client is None:
            raise ToolException("this tool was built with a sync client only: use invoke")
        try:
            result = await async_client.execute(code, **options_of(language, timeout_s))
        except SandgateError as exc:
            raise ToolException(str(exc)) from exc
        return describe_execution(result), result

    return StructuredTool.from_function(
        func=run,
        coroutine=arun,
        name="execute_code",
        description=EXECUTE_DESCRIPTION,
        args_schema=ExecuteCodeArgs,
        response_format="content_and_artifact",
        handle_tool_error=True,
    )
