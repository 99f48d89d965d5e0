"""Rich results and files out, as a runner reports them: `result`, `file` and `chunk` records
(sandbox/runner/PROTOCOL.md) collected into `RichResult`s and `FileOut`s.

Everything here is the code's own untrusted output. Each record is bounded JSON already (the
splitter's 64 KiB); a record longer than one pipe write comes in `chunk` records, rejoined here,
and the bytes of all of them together are bounded by `MAX_RICH_BYTES` per execution, so a
hostile runner cannot make the host hold more. A file's size and hash are computed here from
its bytes, never taken from the record. What passes the cap is dropped and counted in
`dropped`; the policy's own, smaller caps are applied later, by the service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any

import structlog
from pydantic import ValidationError

from sandbox.base import FileOut, MiB, RichResult
from sandbox.bundle import BundleError, safe_relative_path

__all__ = ["MAX_RICH_BYTES", "RichCollector"]

log = structlog.get_logger(__name__)

MAX_RICH_BYTES = 96 * MiB
"""Record bytes (results and files, base64 and JSON included) one execution may hand over."""


class RichCollector:
    """Takes `result`, `file` and `chunk` records; `results` and `files` are what they said."""

    def __init__(self, cap: int = MAX_RICH_BYTES) -> None:
        self.cap = cap
        self.results: list[RichResult] = []
        self.files: dict[str, FileOut] = {}
        self.skipped: list[str] = []
        self.dropped = 0
        self.held = 0  # record bytes taken so far
        self._chunks: dict[int, list[str]] = {}

    def take(self, record: dict[str, Any]) -> bool:
        """Handle a record of one of the three types; False for any other."""
        kind = record.get("type")
        if kind not in ("chunk", "result", "file"):
            return False
        data = record.get("data")
        size = len(data) if kind == "chunk" and isinstance(data, str) else len(json.dumps(record))
        if self.held + size > self.cap:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("sandbox.rich_over_cap", cap=self.cap)
            self._chunks.clear()
            return True
        self.held += size
        if kind == "chunk":
            self._chunk(record)
        else:
            self._whole(record)
        return True

    def _whole(self, record: dict[str, Any]) -> None:
        if record.get("type") == "result":
            self._result(record)
        elif record.get("type") == "file":
            self._file(record)

    def _chunk(self, record: dict[str, Any]) -> None:
        ident, data = record.get("id"), record.get("data")
        if not isinstance(ident, int) or not isinstance(data, str):
            return
        self._chunks.setdefault(ident, []).append(data)
        if record.get("last") is True:
            joined = "".join(self._chunks.pop(ident))
            try:
                whole = json.loads(joined)
            except ValueError:
                return
            if isinstance(whole, dict):
                self._whole(whole)  # its bytes were counted chunk by chunk

    def _result(self, record: dict[str, Any]) -> None:
        try:
            self.results.append(RichResult(kind=record.get("kind"), data=record.get("data")))
        except ValidationError:
            return

    def _file(self, record: dict[str, Any]) -> None:
        path = record.get("path")
        if not isinstance(path, str):
            return
        try:
            safe_relative_path(path)
        except BundleError:
            return
        if isinstance(record.get("skipped"), str):
            self.skipped.append(path)
            return
        content = record.get("content_base64")
        if not isinstance(content, str) or path in self.files:
            return
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return
        self.files[path] = FileOut(
            size=len(data), sha256=hashlib.sha256(data).hexdigest(), content_base64=content
        )
