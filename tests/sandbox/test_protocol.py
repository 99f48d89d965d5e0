"""The runner protocol's framing and records, both ends: the host's encoder and splitter, and
the Python runner's own frame reader and start-up (run by this interpreter; what it does with
the code is tested in real gVisor in test_runner.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sandbox.base import ExecutionSpec, Limits
from sandbox.languages import language
from sandbox.runner import runner_path
from sandbox.runner.protocol import (
    READY_PREFIX,
    Record,
    RecordSplitter,
    execute_frame,
    frame_bytes,
    parse_ready,
)
from sandbox.runner.python import read_frame

TOKEN = "0123456789abcdef0123456789abcdef"


def _record(body: dict[str, object], token: str = TOKEN) -> bytes:
    return b"\x1eSGR/1 " + token.encode() + b" " + json.dumps(body).encode() + b"\n"


def _split(stream: bytes, chunk: int) -> tuple[bytes, list[Record]]:
    records: list[Record] = []
    splitter = RecordSplitter(TOKEN, records.append)
    out = b"".join(splitter.feed(stream[i : i + chunk]) for i in range(0, len(stream), chunk))
    return out + splitter.flush(), records


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 40, 41, 4096])
def test_when_records_sit_anywhere_in_output_then_output_is_exactly_the_codes(chunk: int) -> None:
    limit = {"type": "limit", "limit": "processes", "call": "fork"}
    stream = (
        b"half a line"
        + _record(limit)
        + b" and the rest\n\x1e not a record\n"
        + _record({"type": "ready", "protocol": 1}, token="-")
        + b"tail without newline \x1eSG"
    )
    out, records = _split(stream, chunk)
    assert out == b"half a line and the rest\n\x1e not a record\ntail without newline \x1eSG"
    assert records == [limit, {"type": "ready", "protocol": 1}]


@pytest.mark.parametrize(
    "line",
    [
        _record({"type": "limit"}, token="f" * 32),  # another execution's token
        b"\x1eSGR/1 " + TOKEN.encode() + b" {not json}\n",
        b"\x1eSGR/1 " + TOKEN.encode() + b' ["a list"]\n',
    ],
    ids=["other-token", "not-json", "not-an-object"],
)
def test_when_a_line_only_looks_like_a_record_then_it_stays_output(line: bytes) -> None:
    assert _split(b"a" + line + b"b", 5) == (b"a" + line + b"b", [])


def test_when_a_record_never_ends_then_past_the_bound_it_is_output() -> None:
    endless = b"\x1eSGR/1 " + TOKEN.encode() + b' {"type": "' + b"x" * (70 << 10)
    out, records = _split(endless, 4096)
    assert (out, records) == (endless, [])


def test_when_a_spec_is_framed_then_the_runner_reads_exactly_the_frame() -> None:
    spec = ExecutionSpec(
        execution_id="x",
        code="print('\u00e9')",
        files={"a/b.txt": "\u20ac"},
        limits=Limits(max_processes=8),
    )
    read, write = os.pipe()
    os.write(write, execute_frame(spec, TOKEN) + b"the code's own stdin")
    os.close(write)
    frame = read_frame(read)
    assert frame["token"] == TOKEN and frame["mode"] == "once"
    assert frame["code"] == "print('\u00e9')"
    assert frame["files"] == {"a/b.txt": {"text": "\u20ac"}}
    assert frame["limits"] == {"processes": 8}
    assert os.read(read, 100) == b"the code's own stdin"
    os.close(read)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage\n", b"SGR/1 abc\n", b"SGR/2 2\n{}", b"SGR/1 10\n{}", frame_bytes({"a": 1})],
    ids=["empty", "no-magic", "bad-length", "other-version", "short", "not-execute"],
)
def test_when_stdin_is_no_frame_then_the_runner_says_so_and_exits_125(data: bytes) -> None:
    runner = runner_path(language("python"))
    done = subprocess.run(
        [sys.executable, str(runner)], input=data, capture_output=True, timeout=30, check=False
    )
    first, second, *rest = done.stdout.split(b"\n")
    assert parse_ready(first + b"\n") == {
        "type": "ready",
        "protocol": 1,
        "runner": "python",
        "features": ["once", "limit-report", "binary-files"],
    }
    assert second.startswith(READY_PREFIX) and b'"type":"error"' in second
    assert rest == [b""] and done.returncode == 125
