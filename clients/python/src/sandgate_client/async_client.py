"""`AsyncSandgate`, the asyncio client: every call of `Sandgate`, awaited."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator
from typing import Any, TypeVar, Unpack, cast

import httpx
from tenacity import AsyncRetrying

from sandgate_client import _calls
from sandgate_client._base import (
    BaseClient,
    connection_failed,
    final_result,
    poll_options,
    raise_for_error,
    retry_options,
)
from sandgate_client._calls import NDJSON, Call, ExecuteOptions, SessionOptions
from sandgate_client.errors import SessionEnded, SessionNotFound, StreamInterrupted
from sandgate_client.events import (
    Callbacks,
    Event,
    EventDecoder,
    ResultCallback,
    TextCallback,
    aconsume,
    events_of_answer,
)
from sandgate_client.models import (
    ExecuteResult,
    ExecutionState,
    FileInfo,
    ScreenResult,
    SessionInfo,
    SessionResult,
)

__all__ = [
    "AsyncExecutions",
    "AsyncSandgate",
    "AsyncSession",
    "AsyncSessionFiles",
    "AsyncSessions",
]

T = TypeVar("T")
R = TypeVar("R", bound=ExecuteResult)


class AsyncSandgate(BaseClient[httpx.AsyncClient]):
    __doc__ = BaseClient.__doc__

    def _new_http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient()

    @property
    def sessions(self) -> AsyncSessions:
        """Sessions: sandboxes kept between calls."""
        return AsyncSessions(self)

    @property
    def executions(self) -> AsyncExecutions:
        """Asynchronous executions: queued, answered later."""
        return AsyncExecutions(self)

    async def aclose(self) -> None:
        """Close the connection pool (unless it was passed in)."""
        if self._own_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncSandgate:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def execute(
        self,
        code: str,
        *,
        on_stdout: TextCallback | None = None,
        on_stderr: TextCallback | None = None,
        on_result: ResultCallback | None = None,
        **options: Unpack[ExecuteOptions],
    ) -> ExecuteResult:
        """Run `code` in a sandbox; with a callback, streamed (callbacks run in the loop)."""
        call = _calls.execute(code, options)
        return await self._run(call, Callbacks(on_stdout, on_stderr, on_result))

    def stream(
        self, code: str, **options: Unpack[ExecuteOptions]
    ) -> AsyncIterator[Event[ExecuteResult]]:
        """`async for event in client.stream(code)`: output as produced, then an `EndEvent`."""
        return self._stream(_calls.execute(code, options))

    async def screen(
        self, text: str, stage: str = "input", *, policy: str | None = None
    ) -> ScreenResult:
        """Screen `text` at `stage` (`input`, `output` or `code`)."""
        return await self._call(_calls.screen(text, stage, policy))

    async def _send(self, call: Call[Any], stream: bool = False) -> httpx.Response:
        async for attempt in AsyncRetrying(**retry_options(self.max_retries)):
            with attempt:
                try:
                    response = await self._http.send(self._build(call, stream), stream=stream)
                    if response.is_error:
                        await response.aread()
                        await response.aclose()
                except httpx.TransportError as exc:
                    raise connection_failed(exc, self.url) from exc
                raise_for_error(response)
        return response

    async def _call(self, call: Call[T]) -> T:
        return call.read(await self._send(call))

    async def _run(self, call: Call[R], callbacks: Callbacks) -> R:
        if callbacks:
            return await aconsume(self._stream(call), callbacks)
        return await self._call(call)

    async def _stream(self, call: Call[R]) -> AsyncIterator[Event[R]]:
        response = await self._send(call, stream=True)
        try:
            if not response.headers.get("content-type", "").startswith(NDJSON):
                await response.aread()
                for whole in events_of_answer(call.read(response)):
                    yield whole
                return
            decoder = EventDecoder(cast(type[R], call.model))
            async for line in response.aiter_lines():
                if (event := decoder.decode(line)) is not None:
                    yield event
            decoder.finish()
        except httpx.TransportError as exc:
            raise StreamInterrupted(f"the stream broke off: {type(exc).__name__}") from exc
        finally:
            await response.aclose()


class AsyncSessionFiles:
    """The files of a session's working directory `/work`."""

    def __init__(self, client: AsyncSandgate, session_id: str) -> None:
        self._client, self._id = client, session_id

    async def write(self, path: str, data: bytes | str) -> FileInfo:
        """Write `data` (text is UTF-8 encoded) at `path`, relative to `/work`."""
        raw = data.encode() if isinstance(data, str) else data
        return await self._client._call(_calls.write_file(self._id, path, raw))

    async def read(self, path: str) -> bytes:
        """The bytes of the file at `path`, relative to `/work`."""
        return await self._client._call(_calls.read_file(self._id, path))


class AsyncSession:
    """A sandbox kept between calls; `async with` deletes it on exit, whatever happens."""

    def __init__(self, client: AsyncSandgate, info: SessionInfo) -> None:
        self._client = client
        self.info = info
        self.id = info.session_id
        self.files = AsyncSessionFiles(client, self.id)

    async def run(
        self,
        code: str,
        *,
        on_stdout: TextCallback | None = None,
        on_stderr: TextCallback | None = None,
        on_result: ResultCallback | None = None,
        **options: Unpack[ExecuteOptions],
    ) -> SessionResult:
        """Run `code` in the session (streamed when a callback is given)."""
        call = _calls.run_in_session(self.id, code, options)
        return await self._client._run(call, Callbacks(on_stdout, on_stderr, on_result))

    def stream(
        self, code: str, **options: Unpack[ExecuteOptions]
    ) -> AsyncIterator[Event[SessionResult]]:
        """Run `code` in the session, yielding events as output is produced."""
        return self._client._stream(_calls.run_in_session(self.id, code, options))

    async def refresh(self) -> SessionInfo:
        """The session as the service describes it now."""
        self.info = await self._client._call(_calls.get_session(self.id))
        return self.info

    async def close(self) -> None:
        """Delete the session; one that already ended or is gone is left be."""
        try:
            await self._client._call(_calls.delete_session(self.id))
        except (SessionEnded, SessionNotFound):
            pass

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()


class _Starting:
    """What `AsyncSessions.create` returns: await it, or `async with` it."""

    def __init__(self, client: AsyncSandgate, options: SessionOptions) -> None:
        self._client, self._options = client, options
        self._session: AsyncSession | None = None

    async def _start(self) -> AsyncSession:
        info = await self._client._call(_calls.create_session(self._options))
        return AsyncSession(self._client, info)

    def __await__(self) -> Generator[Any, None, AsyncSession]:
        return self._start().__await__()

    async def __aenter__(self) -> AsyncSession:
        self._session = await self._start()
        return self._session

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()


class AsyncSessions:
    """`client.sessions`: create, attach to and list sessions."""

    def __init__(self, client: AsyncSandgate) -> None:
        self._client = client

    def create(self, **options: Unpack[SessionOptions]) -> _Starting:
        """Start a session: `s = await ...create()`, or `async with ...create() as s:`."""
        return _Starting(self._client, options)

    async def get(self, session_id: str) -> AsyncSession:
        """An existing session, by id."""
        return AsyncSession(self._client, await self._client._call(_calls.get_session(session_id)))

    async def list(self) -> list[SessionInfo]:
        """The sessions of the key's tenant."""
        return await self._client._call(_calls.list_sessions())


class AsyncExecutions:
    """`client.executions`: queued executions, answered later (and to a webhook if given)."""

    def __init__(self, client: AsyncSandgate) -> None:
        self._client = client

    async def submit(
        self, code: str, *, webhook_url: str | None = None, **options: Unpack[ExecuteOptions]
    ) -> ExecutionState:
        """Queue `code`; the answer is `queued` with the execution's id."""
        return await self._client._call(_calls.submit(code, options, webhook_url))

    async def get(self, execution_id: str) -> ExecutionState:
        """The execution's status, and its answer once done."""
        return await self._client._call(_calls.get_execution(execution_id))

    async def list(self, status: str | None = None) -> list[ExecutionState]:
        """Executions, optionally only those of `status` (`dead`: webhooks given up on)."""
        return await self._client._call(_calls.list_executions(status))

    async def wait(self, execution_id: str, timeout: float = 600.0) -> ExecuteResult:
        """Poll until the execution ends; its answer, or `ExecutionFailed`/`StillRunning`."""
        state: ExecutionState = await AsyncRetrying(**poll_options(timeout))(self.get, execution_id)
        return final_result(state)
