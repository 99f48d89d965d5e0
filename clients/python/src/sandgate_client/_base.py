"""What the sync and async clients share: settings, defaults, request building, retry policy."""

from __future__ import annotations

import os
from typing import Any, Generic, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    retry_if_exception,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
)
from tenacity.wait import wait_exponential, wait_exponential_jitter

from sandgate_client._calls import NDJSON, Call
from sandgate_client.errors import (
    ConfigurationError,
    ConnectionFailed,
    ExecutionFailed,
    RateLimited,
    StillRunning,
    Unavailable,
    error_from_response,
)
from sandgate_client.models import ExecuteResult, ExecutionState

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "MAX_RETRY_WAIT_S",
    "BaseClient",
    "connection_failed",
    "final_result",
    "poll_options",
    "raise_for_error",
    "retry_options",
]

__version__ = "0.1.0"
DEFAULT_URL = "http://127.0.0.1:8000"
# connect: a local or LAN service answers in well under this. read: the longest wait between two
# bytes of an answer, and an execution answers only when it ends (after up to the service's
# queue wait, 10 s by default, and the policy's `timeout_s`); a stream waits this long at most
# between two lines. write: a request body of a few MiB. pool: waiting for a free connection.
DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=300.0, write=60.0, pool=30.0)
DEFAULT_MAX_RETRIES = 3
MAX_RETRY_WAIT_S = 60.0
_BACKOFF = wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)


H = TypeVar("H", httpx.Client, httpx.AsyncClient)


class BaseClient(Generic[H]):
    """A client of one Sandgate service.

    `url` defaults to `SANDGATE_URL`, then `http://127.0.0.1:8000`; `api_key` to
    `SANDGATE_API_KEY` (`ConfigurationError` if neither is set). `timeout` is seconds or an
    `httpx.Timeout`: by default connect 5 s, read 300 s (an execution answers when it ends; a
    stream may be silent this long between lines), write 60 s, pool 30 s. 429 and 503 answers
    are retried up to `max_retries` times, waiting at least their `Retry-After`. Pass
    `http_client` to share a connection pool: it is then yours to close.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: H | None = None,
    ) -> None:
        self.url = (url or os.environ.get("SANDGATE_URL") or DEFAULT_URL).rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigurationError(f"the service URL must be http:// or https://: {self.url!r}")
        key = api_key or os.environ.get("SANDGATE_API_KEY")
        if not key:
            raise ConfigurationError("no API key: pass api_key= or set SANDGATE_API_KEY")
        self._headers = {
            "Authorization": f"Bearer {key}",
            "User-Agent": f"sandgate-client/{__version__}",
        }
        self.timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self.max_retries = max_retries
        self._own_http = http_client is None
        self._http: H = http_client if http_client is not None else self._new_http()

    def _new_http(self) -> H:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"  # never the key

    def _build(self, call: Call[Any], stream: bool) -> httpx.Request:
        headers = {**self._headers, "Accept": NDJSON if stream else "application/json"}
        return self._http.build_request(
            call.method,
            self.url + call.path,
            json=call.json,
            content=call.content,
            params=call.params,
            headers=headers,
            timeout=self.timeout,
        )


def raise_for_error(response: httpx.Response) -> None:
    """Raise the typed error of an error answer (whose body has been read)."""
    if response.is_error:
        raise error_from_response(response)


def connection_failed(exc: httpx.TransportError, url: str) -> ConnectionFailed:
    """The client's error for a transport failure (refused, reset, timed out)."""
    return ConnectionFailed(f"{type(exc).__name__} talking to {url}: {exc}".rstrip(": "))


def retry_options(max_retries: int, max_wait: float = MAX_RETRY_WAIT_S) -> dict[str, Any]:
    """tenacity's arguments: retry 429 and 503 up to `max_retries` times, waiting the longer of
    the service's `Retry-After` and an exponential backoff with jitter; an answer that asks for
    a wait longer than `max_wait` (a daily quota) is raised at once."""

    def retryable(exc: BaseException) -> bool:
        if not isinstance(exc, RateLimited | Unavailable):  # the service did nothing for these
            return False
        return exc.retry_after is None or exc.retry_after <= max_wait

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        after = getattr(exc, "retry_after", None) or 0.0
        return max(float(after), _BACKOFF(state))

    return {
        "stop": stop_after_attempt(max_retries + 1),
        "wait": wait,
        "retry": retry_if_exception(retryable),
        "reraise": True,
    }


def poll_options(timeout: float) -> dict[str, Any]:
    """tenacity's arguments for polling an asynchronous execution until it is done or failed:
    every 0.2 s at first, backing off to every 2 s, for at most `timeout` seconds."""

    def gave_up(state: RetryCallState) -> ExecutionState:
        last = state.outcome.result() if state.outcome else None
        status = last.status if isinstance(last, ExecutionState) else "unknown"
        raise StillRunning(f"the execution is still {status} after {timeout:g} s")

    return {
        "retry": retry_if_result(lambda state: state.status in ("queued", "running")),
        "wait": wait_exponential(multiplier=0.1, min=0.2, max=2.0),
        "stop": stop_after_delay(timeout),
        "retry_error_callback": gave_up,
    }


def final_result(state: ExecutionState) -> ExecuteResult:
    """The answer of a finished asynchronous execution; `ExecutionFailed` if it failed."""
    if state.status == "done" and state.response is not None:
        return state.response
    detail = state.response.detail if state.response else None
    raise ExecutionFailed(state.execution_id, detail or f"status {state.status}, no answer")
