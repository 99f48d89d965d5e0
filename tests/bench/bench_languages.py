"""A trivial program per language in a cold gVisor sandbox (`backend.run`), against the same
interpreter run bare in the same root filesystem (`chroot <rootfs> node -e ...`), interleaved."""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sandbox.base import ExecutionSpec, Limits
from sandbox.image import ImageStore
from sandbox.runsc import RunscBackend
from sandgate.settings import REPO_ROOT
from tests.bench._stats import summary
from tests.conftest import SHARED_IMAGES

RUNS = 20
# name: (language, image, sandboxed code, bare command in the image's root filesystem)
CASES = {
    "python print(1)": ("python", "python", "print(1)", ["python3", "-c", "print(1)"]),
    "node console.log(1)": ("node", "node", "console.log(1)", ["node", "-e", "console.log(1)"]),
    "bash echo 1": ("bash", "bash", "echo 1", ["bash", "-c", "echo 1"]),
    "python-data import numpy, pandas": (
        "python",
        "python-data",
        "import numpy, pandas",
        ["python3", "-c", "import numpy, pandas"],
    ),
}


def _sandboxed(backend: RunscBackend, language: str, image: str, code: str) -> float:
    spec = ExecutionSpec(
        execution_id=uuid.uuid4().hex,
        code=code,
        language=language,
        image=image,
        limits=Limits(timeout_s=60, cpu_s=60, memory_mb=512),
    )
    started = time.perf_counter()
    result = asyncio.run(backend.run(spec))
    elapsed = time.perf_counter() - started
    assert result.status.value == "ok", result.stderr
    return elapsed


def _bare(rootfs: Path, argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(["chroot", str(rootfs), *argv], check=True, capture_output=True)
    return time.perf_counter() - started


def run() -> None:
    """Print p50/p95 per language, sandboxed and bare, and their ratio."""
    state = Path(tempfile.mkdtemp(prefix="sandgate-bench-"))
    (state / "images").symlink_to(SHARED_IMAGES)
    store = ImageStore(REPO_ROOT / "images", state)
    names = sorted({image for _, image, _, _ in CASES.values()})
    store.ensure_many(names, progress=lambda line: sys.stdout.write(line + "\n"))
    backend = RunscBackend(state_dir=state, images=store)
    backend.reap()
    timings: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in CASES}
    try:
        for language, image, code, _argv in CASES.values():  # warm the page cache
            _sandboxed(backend, language, image, code)
        for _ in range(RUNS):
            order = list(CASES.items())
            random.shuffle(order)
            for name, (language, image, code, argv) in order:
                timings[name][0].append(_sandboxed(backend, language, image, code))
                timings[name][1].append(_bare(store.rootfs(image), argv))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"cold sandbox vs bare in its rootfs, {RUNS} runs each, interleaved")
    print(f"  {'program':34} {'sandbox p50/p95 ms':>20} {'bare p50/p95 ms':>18} {'p50 ratio':>10}")
    for name, (sandboxed, bare) in timings.items():
        (s50, s95), (b50, b95) = summary(sandboxed), summary(bare)
        print(f"  {name:34} {s50:9.1f} {s95:9.1f}  {b50:8.1f} {b95:8.1f}  {s50 / b50:8.1f}x")
