"""The python-data image in real gVisor: numpy, pandas, scipy and matplotlib import and work on a
read-only root, plots are drawn without a display and saved into /work, and memory stays capped.
"""

from __future__ import annotations

import base64
import struct

import pytest

from sandbox.base import Status
from sandbox.image import ImageStore
from tests.sandbox.conftest import Backend
from tests.sandbox.test_conformance import run

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def data_backend(runsc_backend: Backend, images: ImageStore) -> Backend:
    """The runsc backend, with python-data built (a no-op when the test set-up built it)."""
    images.ensure("python-data", progress=lambda _line: None)
    return runsc_backend


def test_when_numpy_pandas_and_scipy_compute_then_the_results_are_right(
    data_backend: Backend,
) -> None:
    code = """
        import numpy as np, pandas as pd, scipy.stats
        frame = pd.DataFrame({"x": np.arange(10), "y": np.arange(10) ** 2})
        print(int(frame.x.sum()), frame.groupby(frame.x % 2).y.sum().tolist())
        print(round(float(scipy.stats.norm.cdf(1.96)), 3), np.__version__, pd.__version__)
    """
    result = run(data_backend, code, image="python-data", limits={"timeout_s": 30})
    assert result.status is Status.OK, result.stderr
    assert result.stdout.splitlines() == ["45 [120, 165]", "0.975 1.24.2 1.5.3"]
    assert result.stderr == ""


def test_when_a_plot_is_saved_then_a_png_of_the_right_size_is_in_work_and_nothing_else(
    data_backend: Backend,
) -> None:
    code = """
        import os, sys
        import matplotlib
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
        ax.plot([1, 2, 3], [3, 1, 2]); ax.set_title("é sandbox")
        fig.savefig("/work/plot.png")
        png = open("/work/plot.png", "rb").read()
        sys.stdout.buffer.write(png[:24])
        print()
        print(matplotlib.get_backend(), sorted(os.listdir("/work")), "DISPLAY" in os.environ)
        print(os.readlink("/tmp/matplotlib/" + os.listdir("/tmp/matplotlib")[0]))
    """
    result = run(data_backend, code, image="python-data", limits={"timeout_s": 30})
    assert result.status is Status.OK, result.stderr
    assert result.stderr == ""  # no font-cache rebuild, no display warning
    assert result.stdout_base64 is not None
    raw = base64.b64decode(result.stdout_base64)
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    assert struct.unpack(">II", raw[16:24]) == (400, 300)
    found, cache = raw[25:].decode().splitlines()
    assert found == "agg ['plot.png'] False"  # matplotlib wrote no .cache or .config to /work
    assert cache.startswith("/usr/share/sandgate/matplotlib/fontlist-v")


def test_when_300mb_are_allocated_under_256mb_then_memory_limit(data_backend: Backend) -> None:
    code = "import numpy as np\nblock = np.ones(300 << 20, dtype=np.uint8)\nprint(block.sum())"
    result = run(data_backend, code, image="python-data", limits={"memory_mb": 256})
    assert result.status is Status.MEMORY_LIMIT, (result.status, result.stderr[-300:])
    assert result.peak_memory_bytes <= (256 << 20) + (1 << 20)


def test_when_the_plain_python_image_is_used_then_it_has_no_numpy(
    data_backend: Backend,
) -> None:
    result = run(data_backend, "import numpy")
    assert result.status is Status.ERROR and "No module named 'numpy'" in result.stderr
