"""A trivial program per language in gVisor, pooled (a sandbox started ahead, pre-imports as the
service has them) and cold (`backend.run` starts one), against the same interpreter run bare in
the same root filesystem (`chroot <rootfs> node -e ...`), all interleaved; and python-data's
`import numpy, pandas`, which its pooled sandboxes have pre-imported."""

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
from sandbox.pool import PoolOptions, SlotClass
from sandbox.runsc import RunscBackend
from sandbox.slots import SandboxSlots
from sandgate.settings import DEFAULT_PREIMPORT, REPO_ROOT
from tests.bench._stats import summary
from tests.conftest import SHARED_IMAGES

RUNS = 20
READY_WAIT_S = 120
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
Timings = dict[str, dict[str, list[float]]]


def _spec(language: str, image: str, code: str) -> ExecutionSpec:
    return ExecutionSpec(
        execution_id=uuid.uuid4().hex,
        code=code,
        language=language,
        image=image,
        limits=Limits(timeout_s=60, cpu_s=60, memory_mb=512),
    )


async def _sandboxed(backend: RunscBackend, spec: ExecutionSpec) -> float:
    """Seconds from handing `spec` over to its answer (the sandbox's removal comes after)."""
    started = time.perf_counter()
    result = await backend.run(spec)
    elapsed = time.perf_counter() - started
    assert result.status.value == "ok", (result.status, result.stderr[-500:])
    await backend.settle()
    return elapsed


async def _pooled(backend: RunscBackend, spec: ExecutionSpec) -> float:
    """`_sandboxed`, once a sandbox of the spec's class is ready (so the run is a hit)."""
    name = SlotClass.of(spec).name
    deadline = time.monotonic() + READY_WAIT_S
    while backend.pool_state()[name]["ready"] < 1:
        assert time.monotonic() < deadline, f"the pool never filled {name}"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # the refill's next boot (at the least CPU weight) is not measured
    return await _sandboxed(backend, spec)


def _bare(rootfs: Path, argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(["chroot", str(rootfs), *argv], check=True, capture_output=True)
    return time.perf_counter() - started


async def _measure(store: ImageStore, state: Path) -> Timings:
    cold = RunscBackend(state_dir=state / "cold", images=store)
    pooled = RunscBackend(
        state_dir=state / "pooled",
        images=store,
        pool=PoolOptions(size=1, preimport=tuple(DEFAULT_PREIMPORT.split(","))),
        slots=SandboxSlots(state / "pooled" / "slots", 2, 60),
    )
    cold.reap()
    pooled.reap()
    await pooled.start()
    pooled.warm([SlotClass.of(_spec(lang, image, code)) for lang, image, code, _ in CASES.values()])
    timings: Timings = {name: {"pooled": [], "cold": [], "bare": []} for name in CASES}
    try:
        for language, image, code, _argv in CASES.values():  # warm the page cache
            await _sandboxed(cold, _spec(language, image, code))
        for _ in range(RUNS):
            order = list(CASES.items())
            random.shuffle(order)
            for name, (language, image, code, argv) in order:
                spec = _spec(language, image, code)
                timings[name]["pooled"].append(await _pooled(pooled, spec))
                timings[name]["cold"].append(await _sandboxed(cold, _spec(language, image, code)))
                timings[name]["bare"].append(_bare(store.rootfs(image), argv))
    finally:
        await pooled.aclose()
        await cold.aclose()
    return timings


def run() -> None:
    """Print p50/p95 per language, pooled, cold and bare, and the ratios of their p50s."""
    state = Path(tempfile.mkdtemp(prefix="sandgate-bench-"))
    for backend in ("cold", "pooled"):
        (state / backend).mkdir()
        (state / backend / "images").symlink_to(SHARED_IMAGES)
    store = ImageStore(REPO_ROOT / "images", state / "cold")
    names = sorted({image for _, image, _, _ in CASES.values()})
    store.ensure_many(names, progress=lambda line: sys.stdout.write(line + "\n"))
    try:
        timings = asyncio.run(_measure(store, state))
    finally:
        shutil.rmtree(state, ignore_errors=True)
    print(f"pooled and cold sandbox vs bare in its rootfs, {RUNS} runs each, interleaved (ms)")
    print(
        f"  {'program':34} {'pooled p50/p95':>15} {'cold p50/p95':>15} {'bare p50/p95':>15}"
        f" {'pooled/bare':>12} {'cold/bare':>10}"
    )
    for name, runs in timings.items():
        (p50, p95), (c50, c95), (b50, b95) = (summary(runs[k]) for k in ("pooled", "cold", "bare"))
        print(
            f"  {name:34} {p50:7.1f} {p95:7.1f} {c50:7.1f} {c95:7.1f} {b50:7.1f} {b95:7.1f}"
            f" {p50 / b50:11.2f}x {c50 / b50:9.1f}x"
        )
