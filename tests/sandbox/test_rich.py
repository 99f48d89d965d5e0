"""Rich results and files out in mode `once`, in real gVisor, with and without the pool: the
final expression's value, `display()` in order, matplotlib figures as PNG (python-data), files
of /work matching `outputs`; and what a hostile program cannot make the host keep. The
collector's own logic (chunks, caps, forged records) is tested without a sandbox at the end."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import textwrap
import uuid
from typing import Any

import pytest
from PIL import Image

from sandbox.base import ExecutionResult, ExecutionSpec, Status
from sandbox.rich import RichCollector
from tests.sandbox.conftest import Backend


@pytest.fixture(params=["runsc", "runsc-pool"])
def runner_backend(request: pytest.FixtureRequest) -> Backend:
    """The backends whose runner is told to collect rich results (Docker's frame is written
    before its runner announces anything, so it gets none)."""
    found: Backend = request.getfixturevalue(f"{str(request.param).replace('-', '_')}_backend")
    return found


def run(backend: Backend, code: str, **kwargs: Any) -> ExecutionResult:
    spec = ExecutionSpec(execution_id=uuid.uuid4().hex, code=textwrap.dedent(code), **kwargs)
    return backend.run(spec)


@pytest.mark.sandbox
def test_when_the_last_statement_is_an_expression_then_its_value_is_the_result(
    runner_backend: Backend,
) -> None:
    result = run(runner_backend, "x = 6\nprint('out')\nx * 7")
    assert (result.status, result.stdout) == (Status.OK, "out\n")
    assert [(r.kind, r.data) for r in result.results] == [("execute_result", {"text/plain": "42"})]


@pytest.mark.sandbox
def test_when_code_displays_then_every_value_comes_in_order_before_the_last_one(
    runner_backend: Backend,
) -> None:
    code = """
        class Html:
            def _repr_html_(self):
                return "<b>bold</b>"
            def __repr__(self):
                return "Html()"
        display(1, "two")
        display(Html())
        print(None)
        [3]
    """
    result = run(runner_backend, code)
    assert [(r.kind, r.data) for r in result.results] == [
        ("display", {"text/plain": "1"}),
        ("display", {"text/plain": "'two'"}),
        ("display", {"text/plain": "Html()", "text/html": "<b>bold</b>"}),
        ("execute_result", {"text/plain": "[3]"}),
    ]


@pytest.mark.sandbox
def test_when_the_last_expression_is_none_or_code_fails_then_no_value(
    runner_backend: Backend,
) -> None:
    assert run(runner_backend, "print('x')").results == []
    failed = run(runner_backend, "1 / 0")
    assert (failed.status, failed.results) == (Status.ERROR, [])
    assert failed.stderr.splitlines()[-1] == "ZeroDivisionError: division by zero"
    assert "runner" not in failed.stderr


@pytest.mark.sandbox
def test_when_a_value_is_large_then_it_arrives_whole(runner_backend: Backend) -> None:
    result = run(runner_backend, "'\"\\\\' * 100_000")
    assert result.results[0].data["text/plain"] == repr('"\\' * 100_000)


@pytest.mark.sandbox
def test_when_outputs_match_then_those_files_come_back_hashed(runner_backend: Backend) -> None:
    blob = bytes(range(256)) * 1000
    code = """
        import os
        os.makedirs('out/deep')
        open('a.csv', 'w').write('x,y\\n')
        open('out/deep/b.bin', 'wb').write(open('in.bin', 'rb').read())
        open('skip.txt', 'w').write('not asked for')
        os.symlink('/etc/passwd', 'link.csv')
        os.mkdir('dir.csv')
    """
    result = run(runner_backend, code, files={"in.bin": blob}, outputs=("*.csv", "out/**", "../*"))
    assert result.status is Status.OK, result.stderr
    assert sorted(result.files) == ["a.csv", "out/deep/b.bin"]
    out = result.files["out/deep/b.bin"]
    assert base64.b64decode(out.content_base64) == blob
    assert (out.size, out.sha256) == (len(blob), hashlib.sha256(blob).hexdigest())


@pytest.mark.sandbox
def test_when_code_forges_file_records_then_paths_outside_work_are_dropped(
    runner_backend: Backend,
) -> None:
    code = """
        import gc, base64
        channel = next(o for o in gc.get_objects() if type(o).__name__ == "Channel")
        for path in ("../../etc/evil", "/abs", "ok.txt"):
            channel.send("file", path=path, content_base64=base64.b64encode(b"hi").decode())
        channel.send("file", path="bad.b64", content_base64="not base64!")
        channel.send("result", kind="nonsense", data={"text/plain": "x"})
    """
    result = run(runner_backend, code)
    assert result.status is Status.OK, result.stderr
    assert list(result.files) == ["ok.txt"] and result.results == []


@pytest.mark.sandbox
def test_when_matplotlib_draws_then_figures_come_back_as_png_of_their_size(
    runsc_backend: Backend,
) -> None:
    code = """
        import sys
        import matplotlib.pyplot as plt
        plt.figure(figsize=(4, 3), dpi=50)
        plt.plot([1, 2, 3], [1, 4, 9])
        plt.show()
        plt.figure(figsize=(2, 1), dpi=100)
        plt.bar([1, 2], [3, 4])
        print('pandas' in sys.modules)
    """
    result = run(runsc_backend, code, image="python-data")
    assert result.status is Status.OK, result.stderr
    figures = [r for r in result.results if r.kind == "figure"]
    sizes = []
    for figure in figures:
        png = base64.b64decode(str(figure.data["image/png"]))
        with Image.open(io.BytesIO(png)) as image:
            image.load()  # decodes every pixel: a truncated or corrupt PNG raises
            sizes.append((image.format, image.size))
    assert sizes == [("PNG", (200, 150)), ("PNG", (200, 100))]  # shown, then left open
    assert result.stdout == "False\n"


@pytest.mark.sandbox
def test_when_code_never_imports_matplotlib_then_the_runner_does_not_either(
    runsc_backend: Backend,
) -> None:
    code = "import sys\n[m for m in sys.modules if m.startswith(('matplotlib', 'numpy'))]"
    result = run(runsc_backend, code, image="python-data")
    assert result.results[0].data == {"text/plain": "[]"}


@pytest.mark.sandbox
def test_when_a_frame_is_shown_then_it_comes_as_html_too(runsc_backend: Backend) -> None:
    code = "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': ['x', 'y']})"
    result = run(runsc_backend, code, image="python-data")
    value = result.results[0]
    assert value.kind == "execute_result"
    assert "<table" in str(value.data["text/html"]) and "a  b" in str(value.data["text/plain"])


# -- the collector, without a sandbox -------------------------------------------------------------


def _chunks(record: dict[str, Any], size: int, ident: int = 1) -> list[dict[str, Any]]:
    body = json.dumps(record)
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        {"type": "chunk", "id": ident, "data": p, "last": i == len(pieces) - 1}
        for i, p in enumerate(pieces)
    ]


def test_when_chunks_arrive_then_they_join_into_the_record() -> None:
    collector = RichCollector()
    record = {"type": "result", "kind": "display", "data": {"text/plain": "x" * 10_000}}
    for chunk in _chunks(record, 1000):
        assert collector.take(chunk)
    assert collector.results[0].data == {"text/plain": "x" * 10_000}


def test_when_records_pass_the_cap_then_the_rest_is_dropped_and_counted() -> None:
    collector = RichCollector(cap=50_000)
    big = {"type": "result", "kind": "display", "data": {"text/plain": "y" * 20_000}}
    for ident in range(1, 5):
        for chunk in _chunks(big, 4000, ident):
            collector.take(chunk)
    assert len(collector.results) == 2 and collector.dropped > 0
    assert collector.held <= 50_000


def test_when_a_record_is_not_rich_then_it_is_left_to_others() -> None:
    collector = RichCollector()
    assert not collector.take({"type": "limit", "limit": "processes"})
    assert collector.take({"type": "chunk", "id": 1, "data": "{not json", "last": True})
    assert collector.results == [] and collector.files == {}
