"""The host's side of `sandgate-runner/1` (PROTOCOL.md): frames out, records back.

`execute_frame` encodes what a runner needs to run one spec. A runner's records arrive on the
sandbox's stdout among the code's own bytes; `RecordSplitter` takes them out as the stream
passes, so the output the caller keeps is exactly what the code wrote.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from sandbox.base import ExecutionSpec
from sandbox.bundle import safe_relative_path
from sandbox.languages import language

__all__ = [
    "MAGIC",
    "PROTOCOL",
    "READY_PREFIX",
    "Record",
    "RecordSplitter",
    "execute_frame",
    "frame_bytes",
    "new_token",
    "parse_ready",
]

PROTOCOL = 1
MAGIC = b"SGR/1"
RS = b"\x1e"
READY_PREFIX = RS + MAGIC + b" - "
"""How the first line a runner writes starts: its `ready` record (no token yet)."""
MAX_RECORD = 64 << 10

Record = dict[str, Any]


def new_token() -> str:
    """A fresh token for one execution's records (unguessable, so never met by chance)."""
    return secrets.token_hex(16)


def frame_bytes(frame: Mapping[str, Any]) -> bytes:
    """`SGR/1 <length>\\n` and the frame as UTF-8 JSON."""
    body = json.dumps(frame, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return MAGIC + b" %d\n" % len(body) + body


def execute_frame(spec: ExecutionSpec, token: str) -> bytes:
    """The `execute` frame of `spec` in `once` mode (its stdin follows the frame); raises
    BundleError for a file name that is not safe, before anything is sent."""
    files: dict[str, dict[str, str]] = {}
    for name, content in spec.files.items():
        safe_relative_path(name)
        files[name] = (
            {"base64": base64.b64encode(content).decode("ascii")}
            if isinstance(content, bytes)
            else {"text": content}
        )
    processes = language(spec.language).task_limit(spec.limits.max_processes)
    return frame_bytes(
        {
            "type": "execute",
            "token": token,
            "mode": "once",
            "code": spec.code,
            "files": files,
            "limits": {"processes": processes},
        }
    )


def parse_ready(line: bytes) -> Record | None:
    """The `ready` record in a runner's first line, or None if the line is not one."""
    if not line.startswith(READY_PREFIX):
        return None
    try:
        record = json.loads(line[len(READY_PREFIX) :])
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("type") != "ready":
        return None
    return record


class RecordSplitter:
    """Splits one stream into the code's bytes and the runner's records.

    A record is `RS SGR/1 <token> <json>\n`, anywhere in the stream (the code's output need not
    end its lines), with the execution's token or `-` (the `ready` record, sent before the
    token is known). A prefix cut by a chunk boundary is held back until the next chunk; a
    "record" with another token, no newline within MAX_RECORD bytes, or that is not JSON, is
    the code's output.
    """

    _START = RS + MAGIC + b" "

    def __init__(self, token: str, on_record: Callable[[Record], None]) -> None:
        self._tokens = (token.encode() + b" ", b"- ")
        self._on_record = on_record
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """The code's bytes in `held + chunk`; records found are passed to `on_record`."""
        data, out = self._held + chunk, bytearray()
        self._held = b""
        while data:
            start = data.find(self._START)
            if start < 0:
                keep = self._partial_start(data)
                out += data[: len(data) - keep]
                self._held = data[len(data) - keep :]
                break
            out += data[:start]
            end = data.find(b"\n", start)
            if end < 0:
                if len(data) - start > MAX_RECORD:
                    out += data[start:]
                else:
                    self._held = data[start:]
                break
            if not self._deliver(data[start + len(self._START) : end]):
                out += data[start : end + 1]
            data = data[end + 1 :]
        return bytes(out)

    def flush(self) -> bytes:
        """At the end of the stream: whatever was held back is the code's output."""
        held, self._held = self._held, b""
        return held

    def _partial_start(self, data: bytes) -> int:
        """Length of the longest tail of `data` that begins a record."""
        tail = data[-(len(self._START) - 1) :]
        cut = tail.find(RS)
        while cut >= 0:
            if self._START.startswith(tail[cut:]):
                return len(tail) - cut
            cut = tail.find(RS, cut + 1)
        return 0

    def _deliver(self, line: bytes) -> bool:
        """Hand a record on; False when `line` is not one (so it stays output)."""
        token = next((t for t in self._tokens if line.startswith(t)), None)
        if token is None:
            return False
        try:
            record = json.loads(line[len(token) :])
        except ValueError:
            return False
        if not isinstance(record, dict):
            return False
        self._on_record(record)
        return True
