"""Rich results and files out through `POST /execute`, over real HTTP, in real gVisor: a
matplotlib plot round-trips as a decodable PNG of its size, a pandas frame comes as text/html,
`display()` calls in order, `outputs` and binary inputs byte for byte. The `data-analysis`
policy (tenant `finance`) allows the python-data image."""

from __future__ import annotations

import base64
import hashlib
import io
import os
from typing import Any

import pytest
from PIL import Image

from sandbox.image import ImageStore
from tests.helpers import LiveServer

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def analyst(server: LiveServer, images: ImageStore) -> str:
    """A key of the finance tenant (policy data-analysis), with python-data built."""
    images.ensure_many(["python-data"], progress=lambda _line: None)
    return server.new_key("analyst", tenant="finance")


def execute(server: LiveServer, body: dict[str, Any], key: str | None = None) -> Any:
    with server.client(key=key) as client:
        response = client.post("/execute", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_when_a_plot_is_shown_then_it_returns_as_a_png_of_its_size(
    server: LiveServer, analyst: str
) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.figure(figsize=(3, 2), dpi=80)\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\n"
        "plt.show()"
    )
    answer = execute(server, {"code": code, "image": "python-data"}, key=analyst)
    assert answer["status"] == "ok", answer["stderr"]
    [figure] = answer["results"]
    assert figure["kind"] == "figure"
    with Image.open(io.BytesIO(base64.b64decode(figure["data"]["image/png"]))) as image:
        image.load()
        assert (image.format, image.size) == ("PNG", (240, 160))


def test_when_the_last_value_is_a_frame_then_it_comes_as_html_and_text(
    server: LiveServer, analyst: str
) -> None:
    code = "import pandas as pd\ndf = pd.DataFrame({'city': ['Oslo'], 'n': [3]})\ndf"
    answer = execute(server, {"code": code, "image": "python-data"}, key=analyst)
    [value] = answer["results"]
    assert value["kind"] == "execute_result"
    assert "<table" in value["data"]["text/html"] and "Oslo" in value["data"]["text/html"]
    assert "city" in value["data"]["text/plain"]


def test_when_code_displays_then_results_keep_their_order(server: LiveServer) -> None:
    answer = execute(server, {"code": "display('a')\nprint('between')\ndisplay(2)\n{'k': 3}"})
    assert [(r["kind"], r["data"]["text/plain"]) for r in answer["results"]] == [
        ("display", "'a'"),
        ("display", "2"),
        ("execute_result", "{'k': 3}"),
    ]
    assert answer["stdout"] == "between\n"


def test_when_outputs_and_binary_inputs_are_sent_then_bytes_round_trip(
    server: LiveServer,
) -> None:
    blob = os.urandom(70_000)
    code = (
        "import os\n"
        "os.makedirs('out')\n"
        "open('out/rev.bin', 'wb').write(open('in.bin', 'rb').read()[::-1])\n"
        "open('note.txt', 'w').write('not asked for')"
    )
    body = {
        "code": code,
        "files": {"in.bin": {"content_base64": base64.b64encode(blob).decode()}},
        "outputs": ["out/*.bin"],
    }
    answer = execute(server, body)
    assert answer["status"] == "ok", answer["stderr"]
    assert list(answer["files"]) == ["out/rev.bin"]
    out = answer["files"]["out/rev.bin"]
    assert base64.b64decode(out["content_base64"]) == blob[::-1]
    assert (out["size"], out["sha256"]) == (len(blob), hashlib.sha256(blob[::-1]).hexdigest())


def test_when_code_displays_past_the_policys_count_then_a_marker_ends_the_list(
    server: LiveServer,
) -> None:
    answer = execute(server, {"code": "for i in range(40):\n    display(i)"})
    shown = answer["results"]
    assert [r["data"]["text/plain"] for r in shown[:32]] == [str(i) for i in range(32)]
    assert shown[32]["data"]["text/plain"].startswith("[8 more results not shown")
