"""The runner runs code as `python3 /sandgate/main.py` would, on every backend (real gVisor):
with the pool, in a sandbox started ahead whose interpreter pre-imported modules."""

from __future__ import annotations

import hashlib
import textwrap
import time
import uuid
from typing import Any, Literal

import pytest

from sandbox.base import ExecutionResult, ExecutionSpec, Status
from tests.sandbox.conftest import Backend

pytestmark = pytest.mark.sandbox


def run(backend: Backend, code: str, **kwargs: Any) -> ExecutionResult:
    spec = ExecutionSpec(execution_id=uuid.uuid4().hex, code=textwrap.dedent(code), **kwargs)
    return backend.run(spec)


@pytest.mark.parametrize(
    ("code", "exit_code", "stderr"),
    [
        ("import sys; sys.exit()", 0, ""),
        ("import sys; sys.exit('bye')", 1, "bye\n"),
        ("raise SystemExit(300)", 300 & 0xFF, ""),
        ("import sys; sys.exit(-1)", 255, ""),
        ("raise KeyboardInterrupt", 130, "KeyboardInterrupt"),
    ],
)
def test_when_code_exits_then_the_status_is_the_interpreters(
    backend: Backend, code: str, exit_code: int, stderr: str
) -> None:
    result = run(backend, code)
    assert result.exit_code == exit_code
    assert stderr in result.stderr and "runner" not in result.stderr


def test_when_an_exception_escapes_then_the_traceback_is_the_codes_own(backend: Backend) -> None:
    result = run(backend, "def f():\n    return 1 / 0\nf()\n")
    assert (result.status, result.exit_code) == (Status.ERROR, 1)
    assert result.stderr == (
        "Traceback (most recent call last):\n"
        '  File "/sandgate/main.py", line 3, in <module>\n'
        "    f()\n"
        '  File "/sandgate/main.py", line 2, in f\n'
        "    return 1 / 0\n"
        "           ~~^~~\n"
        "ZeroDivisionError: division by zero\n"
    )


def test_when_the_code_does_not_parse_then_a_syntax_error_and_exit_1(backend: Backend) -> None:
    result = run(backend, "print('a'\n")
    assert result.exit_code == 1
    assert result.stderr.startswith('  File "/sandgate/main.py", line 1')
    assert "SyntaxError" in result.stderr and "Traceback" not in result.stderr


def test_when_the_code_ends_then_threads_atexit_and_finalizers_run_in_order(
    backend: Backend,
) -> None:
    code = """
        import atexit, threading, time
        class Noisy:
            def __del__(self):
                print('finalized', flush=True)
        noisy = Noisy()
        atexit.register(print, 'atexit')
        def late():
            time.sleep(0.3)
            print('thread')
        threading.Thread(target=late).start()
        print('main done')
    """
    result = run(backend, code)
    assert result.stdout == "main done\nthread\natexit\nfinalized\n"
    assert result.exit_code == 0


def test_when_the_code_looks_at_itself_then_it_is_main_in_work(backend: Backend) -> None:
    code = """
        import os, sys, pickle
        class Point:
            pass
        print(__name__, __file__, sys.argv, os.getcwd(), sys.path[0])
        print(type(pickle.loads(pickle.dumps(Point()))).__name__)
        print(sorted(n for n in globals() if n.startswith('__')))
    """
    result = run(backend, code)
    first, second, third = result.stdout.splitlines()
    assert first == "__main__ /sandgate/main.py ['/sandgate/main.py'] /work /sandgate"
    assert second == "Point"
    assert eval(third) == sorted(  # noqa: S307 - our own printed list
        [
            "__builtins__",
            "__cached__",
            "__doc__",
            "__file__",
            "__loader__",
            "__name__",
            "__package__",
            "__spec__",
        ]
    )


def test_when_a_file_shadows_a_preimported_module_then_the_file_is_imported(
    backend: Backend,
) -> None:
    result = run(
        backend,
        "import json, re\nprint(json.WHO, re.compile('a').pattern)",
        files={"json.py": "WHO = 'mine'"},
    )
    assert (result.stdout, result.stderr) == ("mine a\n", "")


def test_when_stdin_is_large_then_all_of_it_arrives_after_the_frame(backend: Backend) -> None:
    text = "\u00e9" * (1 << 19)  # 1 MiB of UTF-8
    result = run(
        backend, "import sys; data = sys.stdin.read(); print(len(data), data[-1])", stdin=text
    )
    assert result.stdout == f"{len(text)} \u00e9\n"


def test_when_code_prints_a_record_then_it_is_taken_out_and_changes_nothing(
    backend: Backend,
) -> None:
    code = """
        import sys
        sys.stdout.write('\\x1eSGR/1 - {"type": "limit", "limit": "processes"}\\n')
        sys.stdout.write('\\x1eSGR/1 0123 {"type": "limit"}\\n')
        print('done')
    """
    result = run(backend, code)
    assert result.status is Status.OK
    assert result.stdout == '\x1eSGR/1 0123 {"type": "limit"}\ndone\n'


def test_when_a_file_is_binary_then_it_arrives_byte_for_byte(backend: Backend) -> None:
    blob = bytes(range(256)) * 4
    code = """
        import hashlib
        d = open('blob.bin', 'rb').read()
        print(len(d), hashlib.sha256(d).hexdigest())
    """
    result = run(backend, code, files={"blob.bin": blob, "note.txt": "\u00e9"})
    assert result.stdout == f"{len(blob)} {hashlib.sha256(blob).hexdigest()}\n", result.stderr


def test_when_output_is_followed_then_it_arrives_as_written_without_records(
    backend: Backend,
) -> None:
    chunks: list[tuple[str, bytes, float]] = []

    async def sink(stream: Literal["stdout", "stderr"], data: bytes) -> None:
        chunks.append((stream, data, time.monotonic()))

    code = "import time, sys\nprint('first')\ntime.sleep(1)\nprint('second', file=sys.stderr)"
    spec = ExecutionSpec(execution_id=uuid.uuid4().hex, code=code)
    result = backend.run(spec, sink)
    assert (result.stdout, result.stderr) == ("first\n", "second\n")
    assert b"".join(d for s, d, _ in chunks if s == "stdout") == b"first\n"
    assert b"".join(d for s, d, _ in chunks if s == "stderr") == b"second\n"
    first = next(t for s, _, t in chunks if s == "stdout")
    second = next(t for s, _, t in chunks if s == "stderr")
    assert second - first > 0.5  # the first line came before the code had finished
