"""Sandgate's Python client: run agent code in a gVisor sandbox and screen text, over HTTP.

from sandgate_client import Sandgate
with Sandgate() as sandgate:  # SANDGATE_URL, SANDGATE_API_KEY
    print(sandgate.execute("print(6 * 7)").stdout)
"""

from sandgate_client._base import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, DEFAULT_URL, __version__
from sandgate_client._calls import ExecuteOptions, SessionOptions
from sandgate_client.async_client import AsyncSandgate, AsyncSession
from sandgate_client.client import Sandgate, Session
from sandgate_client.errors import (
    APIError,
    AuthError,
    ChecksumMismatch,
    ConfigurationError,
    ConnectionFailed,
    ExecutionFailed,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PolicyRefused,
    ProtocolError,
    QuotaExceeded,
    RateLimited,
    SandgateError,
    ServerError,
    SessionEnded,
    SessionNotFound,
    StillRunning,
    StreamInterrupted,
    Unavailable,
)
from sandgate_client.events import EndEvent, Event, OutputEvent, ResultEvent
from sandgate_client.models import (
    ExecuteResult,
    ExecutionState,
    FileInfo,
    Finding,
    Output,
    OutputFile,
    ScreenResult,
    SessionInfo,
    SessionResult,
)

__all__ = [
    "APIError",
    "AsyncSandgate",
    "AsyncSession",
    "AuthError",
    "ChecksumMismatch",
    "ConfigurationError",
    "ConnectionFailed",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "EndEvent",
    "Event",
    "ExecuteOptions",
    "ExecuteResult",
    "ExecutionFailed",
    "ExecutionState",
    "FileInfo",
    "Finding",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Output",
    "OutputEvent",
    "OutputFile",
    "PayloadTooLarge",
    "PolicyRefused",
    "ProtocolError",
    "QuotaExceeded",
    "RateLimited",
    "ResultEvent",
    "Sandgate",
    "SandgateError",
    "ScreenResult",
    "ServerError",
    "Session",
    "SessionEnded",
    "SessionInfo",
    "SessionNotFound",
    "SessionOptions",
    "SessionResult",
    "StillRunning",
    "StreamInterrupted",
    "Unavailable",
    "__version__",
]
