"""`Sandgate`, the synchronous client, with its sessions and asynchronous executions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar, Unpack, cast

import httpx
from tenacity import Retrying

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
    consume,
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

__all__ = ["Executions", "Sandgate", "Session", "SessionFiles", "Sessions"]

T = TypeVar("T")
R = TypeVar("R", bound=ExecuteResult)


class Sandgate(BaseClient[httpx.Client]):
    __doc__ = BaseClient.__doc__

    def _new_http(self) -> httpx.Client:
        return httpx.Client()

    @property
    def sessions(self) -> Sessions:
        """Sessions: sandboxes kept between calls."""
        return Sessions(self)

    @property
    def executions(self) -> Executions:
        """Asynchronous executions: queued, answered later."""
        return Executions(self)

    def close(self) -> None:
        """Close the connection pool (unless it was passed in)."""
        if self._own_http:
            self._http.close()

    def __enter__(self) -> Sandgate:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def execute(
        self,
        code: str,
        *,
        on_stdout: TextCallback | None = None,
        on_stderr: TextCallback | None = None,
        on_result: ResultCallback | None = None,
        **options: Unpack[ExecuteOptions],
    ) -> ExecuteResult:
        """Run `code` in a sandbox and return how it ended. With a callback, the run is
        streamed and each callback is called as output arrives."""
        return self._run(_calls.execute(code, options), Callbacks(on_stdout, on_stderr, on_result))

    def stream(
        self, code: str, **options: Unpack[ExecuteOptions]
    ) -> Iterator[Event[ExecuteResult]]:
        """Run `code`, yielding its output as it is produced and, last, an `EndEvent`."""
        return self._stream(_calls.execute(code, options))

    def screen(self, text: str, stage: str = "input", *, policy: str | None = None) -> ScreenResult:
        """Screen `text` at `stage` (`input`, `output` or `code`)."""
        return self._call(_calls.screen(text, stage, policy))

    def _send(self, call: Call[Any], stream: bool = False) -> httpx.Response:
        for attempt in Retrying(**retry_options(self.max_retries)):
            with attempt:
                try:
                    response = self._http.send(self._build(call, stream), stream=stream)
                    if response.is_error:
                        response.read()
                        response.close()
                except httpx.TransportError as exc:
                    raise connection_failed(exc, self.url) from exc
                raise_for_error(response)
        return response

    def _call(self, call: Call[T]) -> T:
        return call.read(self._send(call))

    def _run(self, call: Call[R], callbacks: Callbacks) -> R:
        return consume(self._stream(call), callbacks) if callbacks else self._call(call)

    def _stream(self, call: Call[R]) -> Iterator[Event[R]]:
        response = self._send(call, stream=True)
        try:
            if not response.headers.get("content-type", "").startswith(NDJSON):
                response.read()
                yield from events_of_answer(call.read(response))
                return
            decoder = EventDecoder(cast(type[R], call.model))
            for line in response.iter_lines():
                if (event := decoder.decode(line)) is not None:
                    yield event
            decoder.finish()
        except httpx.TransportError as exc:
            raise StreamInterrupted(f"the stream broke off: {type(exc).__name__}") from exc
        finally:
            response.close()


class SessionFiles:
    """The files of a session's working directory `/work`."""

    def __init__(self, client: Sandgate, session_id: str) -> None:
        self._client, self._id = client, session_id

    def write(self, path: str, data: bytes | str) -> FileInfo:
        """Write `data` (text is UTF-8 encoded) at `path`, relative to `/work`."""
        raw = data.encode() if isinstance(data, str) else data
        return self._client._call(_calls.write_file(self._id, path, raw))

    def read(self, path: str) -> bytes:
        """The bytes of the file at `path`, relative to `/work`."""
        return self._client._call(_calls.read_file(self._id, path))


class Session:
    """A sandbox kept between calls: variables, imports and `/work` stay. Use it as a context
    manager to delete it on exit, whatever happens in the block."""

    def __init__(self, client: Sandgate, info: SessionInfo) -> None:
        self._client = client
        self.info = info
        self.id = info.session_id
        self.files = SessionFiles(client, self.id)

    def run(
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
        return self._client._run(call, Callbacks(on_stdout, on_stderr, on_result))

    def stream(
        self, code: str, **options: Unpack[ExecuteOptions]
    ) -> Iterator[Event[SessionResult]]:
        """Run `code` in the session, yielding events as output is produced."""
        return self._client._stream(_calls.run_in_session(self.id, code, options))

    def refresh(self) -> SessionInfo:
        """The session as the service describes it now."""
        self.info = self._client._call(_calls.get_session(self.id))
        return self.info

    def close(self) -> None:
        """Delete the session; one that already ended or is gone is left be."""
        try:
            self._client._call(_calls.delete_session(self.id))
        except (SessionEnded, SessionNotFound):
            pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class Sessions:
    """`client.sessions`: create, attach to and list sessions."""

    def __init__(self, client: Sandgate) -> None:
        self._client = client

    def create(self, **options: Unpack[SessionOptions]) -> Session:
        """Start a session (`with client.sessions.create() as s:` deletes it on exit)."""
        return Session(self._client, self._client._call(_calls.create_session(options)))

    def get(self, session_id: str) -> Session:
        """An existing session, by id."""
        return Session(self._client, self._client._call(_calls.get_session(session_id)))

    def list(self) -> list[SessionInfo]:
        """The sessions of the key's tenant."""
        return self._client._call(_calls.list_sessions())


class Executions:
    """`client.executions`: queued executions, answered later (and to a webhook if given)."""

    def __init__(self, client: Sandgate) -> None:
        self._client = client

    def submit(
        self, code: str, *, webhook_url: str | None = None, **options: Unpack[ExecuteOptions]
    ) -> ExecutionState:
        """Queue `code`; the answer is `queued` with the execution's id."""
        return self._client._call(_calls.submit(code, options, webhook_url))

    def get(self, execution_id: str) -> ExecutionState:
        """The execution's status, and its answer once done."""
        return self._client._call(_calls.get_execution(execution_id))

    def list(self, status: str | None = None) -> list[ExecutionState]:
        """Executions, optionally only those of `status` (`dead`: webhooks given up on)."""
        return self._client._call(_calls.list_executions(status))

    def wait(self, execution_id: str, timeout: float = 600.0) -> ExecuteResult:
        """Poll until the execution ends; its answer, or `ExecutionFailed`/`StillRunning`."""
        state: ExecutionState = Retrying(**poll_options(timeout))(self.get, execution_id)
        return final_result(state)
