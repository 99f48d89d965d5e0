"""Rich results and files out: values, figures and `outputs` as objects. Figures need the
`python-data` image, which the `data-analysis` policy (tenant `finance`) allows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sandgate_client import Sandgate

from tests.helpers import LiveServer

pytestmark = pytest.mark.sandbox
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PLOT = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.show()"


def test_when_the_last_line_is_an_expression_then_its_value_is_a_result(sandgate: Sandgate) -> None:
    result = sandgate.execute("x = 6\nx * 7")
    value = next(r for r in result.results if r.kind == "execute_result")
    assert value.text == "42"


def test_when_matplotlib_draws_then_the_figure_comes_back_as_png_and_saves(
    server: LiveServer, tmp_path: Path
) -> None:
    with Sandgate(server.url, server.new_key("analyst", tenant="finance")) as client:
        result = client.execute(PLOT, image="python-data")
    assert result.ok, result.stderr
    figure = result.figures[0]
    assert figure.kind == "figure" and (figure.png or b"").startswith(PNG_MAGIC)
    saved = result.save_figures(tmp_path)
    assert saved and saved[0].read_bytes().startswith(PNG_MAGIC)


def test_when_outputs_are_asked_for_then_matching_files_come_back_checked(
    sandgate: Sandgate, tmp_path: Path
) -> None:
    code = "open('a.csv', 'w').write('x,y\\n1,2\\n')\nopen('skip.txt', 'w').write('no')"
    result = sandgate.execute(code, outputs=["*.csv"])
    assert set(result.files) == {"a.csv"}
    assert result.files["a.csv"].content == b"x,y\n1,2\n"
    assert [p.name for p in result.save_files(tmp_path)] == ["a.csv"]


def test_when_a_binary_file_is_sent_then_the_program_reads_its_bytes(sandgate: Sandgate) -> None:
    result = sandgate.execute(
        "print(open('b.bin', 'rb').read().hex())", files={"b.bin": b"\x00\xff\x10"}
    )
    assert result.stdout == "00ff10\n"
