"""The warm pool through the service (real HTTP, real gVisor): `/ready` and `/metrics` show it,
the policies decide its classes, every execution gets a sandbox of its own, a stricter policy's
limits hold in a sandbox started ahead, and a crash leaves nothing the next start does not reap.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from sandgate.settings import REPO_ROOT
from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import LiveServer, leftovers_of, start_server, wait_for

pytestmark = pytest.mark.sandbox

DEFAULT_CLASS = "python/python/p64/d64"
STRICT_CLASS = "python/python/p16/d16"
TIGHT = """extends: default
description: The default's sandbox with a quarter of its memory (same class of sandbox).
limits: {memory_mb: 64}
"""


def _policies(tmp: Path) -> Path:
    directory = tmp / "policies"
    shutil.copytree(REPO_ROOT / "policies", directory)
    (directory / "tight.yaml").write_text(TIGHT)
    return directory


def _env(policies: Path, **extra: str) -> dict[str, str]:
    return {
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_POLICY_DIR": str(policies),
        "SANDGATE_POOL_SIZE": "2",
        "SANDGATE_QUEUE_TIMEOUT_S": "30",
        **extra,
    }


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory, images: Any) -> Iterator[LiveServer]:
    """A service with a pool of 2 per class, and a `tight` policy of the default's class."""
    tmp = tmp_path_factory.mktemp("pooled")
    with start_server(make_state_dir(tmp / "state"), _env(_policies(tmp))) as live:
        yield live


def pool(live: LiveServer) -> dict[str, dict[str, int]]:
    with live.client() as client:
        found: dict[str, dict[str, int]] = client.get("/ready").json()["pool"]
        return found


def full(live: LiveServer) -> dict[str, dict[str, int]]:
    """Wait until every class of the pool has its target ready."""
    return wait_for(
        lambda: (p := pool(live)) and all(c["ready"] == c["target"] for c in p.values()) and p,
        "a full pool",
        120,
    )


def claims(live: LiveServer) -> dict[str, float]:
    with live.client() as client:
        text = client.get("/metrics").text
    found = {"hit": 0.0, "miss": 0.0}
    for line in text.splitlines():
        if line.startswith("sandgate_pool_claims_total{"):
            found[line.split('result="')[1].split('"')[0]] = float(line.rsplit(" ", 1)[1])
    return found


def execute(live: LiveServer, body: dict[str, Any]) -> dict[str, Any]:
    with live.client() as client:
        response = client.post("/execute", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def hit(live: LiveServer, body: dict[str, Any]) -> dict[str, Any]:
    """Execute once the pool is full, and check the run took a sandbox started ahead."""
    full(live)
    before = claims(live)["hit"]
    answer = execute(live, body)
    assert claims(live)["hit"] == before + 1
    return answer


def gvisor_kernels(state: Path) -> set[str]:
    """Bundles of the gVisor kernels (`runsc-sandbox ... boot`) of a state directory."""
    marker = f"--root={state.resolve() / 'runsc'}"
    return {
        arg.removeprefix("--bundle=")
        for proc in psutil.process_iter(["cmdline"])
        if marker in (cmdline := proc.info["cmdline"] or []) and "boot" in cmdline
        for arg in cmdline
        if arg.startswith("--bundle=")
    }


def test_when_the_service_runs_then_ready_shows_each_pooled_class_and_metrics_its_count(
    pooled: LiveServer,
) -> None:
    # data-analysis has egress: its sandboxes always start cold, so it has no class here.
    assert set(full(pooled)) == {DEFAULT_CLASS, STRICT_CLASS}
    assert full(pooled)[DEFAULT_CLASS] == {"ready": 2, "target": 2}
    with pooled.client() as client:
        text = client.get("/metrics").text
    assert f'sandgate_pool_ready{{class="{DEFAULT_CLASS}"}} 2.0' in text


def test_when_an_execution_leaves_files_and_processes_then_the_next_sees_neither(
    pooled: LiveServer,
) -> None:
    litter = """
        import subprocess
        open('/tmp/left-behind', 'w').write('x')
        open('/work/left-behind', 'w').write('x')
        subprocess.Popen(['sleep', '600'], start_new_session=True)
        print('littered')
    """
    look = """
        import os
        print(os.path.exists('/tmp/left-behind'), os.path.exists('/work/left-behind'))
        print(sorted(open(f'/proc/{p}/comm').read().strip()
                     for p in os.listdir('/proc') if p.isdigit()))
    """
    first = hit(pooled, {"code": _dedent(litter)})
    second = hit(pooled, {"code": _dedent(look)})
    assert first["stdout"] == "littered\n"
    assert second["stdout"] == "False False\n['python3']\n", second
    assigned = {e["execution_id"]: e["sandbox"] for e in pooled.events("sandbox.assigned")}
    assert assigned[first["execution_id"]] != assigned[second["execution_id"]]
    assert len(set(assigned.values())) == len(assigned)  # no two executions, one sandbox


def test_when_a_stricter_policy_has_less_memory_then_a_started_ahead_sandbox_kills_its_code(
    pooled: LiveServer,
) -> None:
    allocate = "b = bytearray(100 << 20); print(len(b))"
    assert hit(pooled, {"code": allocate})["status"] == "ok"  # default: 256 MiB
    tight = hit(pooled, {"code": allocate, "policy": "tight"})  # the same class, 64 MiB
    assert tight["status"] == "memory_limit", tight
    assert tight["policy"]["name"] == "tight"


def test_when_a_burst_exceeds_the_pool_then_every_request_is_answered(pooled: LiveServer) -> None:
    full(pooled)
    before = claims(pooled)
    answers: list[dict[str, Any]] = []
    started = time.monotonic()

    def call() -> None:
        answers.append(execute(pooled, {"code": "print('burst')"}))

    callers = [threading.Thread(target=call) for _ in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert [a["status"] for a in answers] == ["ok"] * 8
    after = claims(pooled)
    hits, misses = after["hit"] - before["hit"], after["miss"] - before["miss"]
    assert hits + misses == 8 and hits >= 2 and misses >= 1
    assert time.monotonic() - started < 30  # the queue wait; nobody was refused or waited it out


def test_when_a_policy_changes_its_class_then_the_old_class_is_drained(
    tmp_path: Path, images: Any
) -> None:
    policies = _policies(tmp_path)
    state = make_state_dir(tmp_path / "state")
    with start_server(state, _env(policies)) as live:
        assert STRICT_CLASS in full(live)
        strict = policies / "strict.yaml"
        strict.write_text(strict.read_text().replace("max_processes: 16", "max_processes: 20"))
        wait_for(lambda: "python/python/p20/d16" in pool(live), "the reloaded class", 60)
        assert STRICT_CLASS not in full(live)
        ready = sum(c["ready"] for c in full(live).values())
        wait_for(lambda: len(gvisor_kernels(state)) == ready, "the old class's sandboxes gone")


def test_when_the_service_is_killed_then_its_started_ahead_sandboxes_go_with_it(
    tmp_path: Path, images: Any
) -> None:
    state = make_state_dir(tmp_path / "state")
    with start_server(state, _env(_policies(tmp_path))) as live:
        full(live)
        assert len(gvisor_kernels(state)) == 4
        live.process.kill()
        live.process.wait()
        wait_for(lambda: leftovers_of(state) == [], "nothing left of the killed service", 30)


def test_when_the_service_and_its_launchers_are_killed_then_the_next_start_reaps_every_slot(
    tmp_path: Path, images: Any
) -> None:
    state = make_state_dir(tmp_path / "state")
    policies = _policies(tmp_path)
    with start_server(state, _env(policies)) as live:
        full(live)
        old = gvisor_kernels(state)
        launchers = [p for p in psutil.process_iter(["cmdline"]) if _launcher_of(p, state)]
        assert len(old) == len(launchers) == 4
        for proc in [live.process, *launchers]:  # as an OOM kill of the whole group would
            os.kill(proc.pid, signal.SIGKILL)
        live.process.wait()
    crashed = leftovers_of(state)  # gVisor's processes die with their launcher; not the rest
    assert any(item.startswith("cgroup") for item in crashed)
    assert any(item.startswith("bundle") for item in crashed)
    with start_server(state, _env(policies)) as again:
        full(again)
        assert not old & gvisor_kernels(state)
        assert not [item for item in leftovers_of(state) if any(b in item for b in old)]
    assert leftovers_of(state) == []


def _launcher_of(proc: psutil.Process, state: Path) -> bool:
    cmdline = proc.info["cmdline"] or []
    return any(a.endswith("subreaper.py") for a in cmdline) and str(state.resolve()) in " ".join(
        cmdline
    )


def _dedent(code: str) -> str:
    import textwrap

    return textwrap.dedent(code)


def test_when_the_pool_is_off_then_ready_shows_no_pool_and_runs_start_cold(
    tmp_path: Path, images: Any
) -> None:
    state = make_state_dir(tmp_path / "state")
    with start_server(state, _env(_policies(tmp_path), SANDGATE_POOL_SIZE="0")) as live:
        assert pool(live) == {}
        assert execute(live, {"code": "print(1)"})["stdout"] == "1\n"
        assert claims(live) == {"hit": 0.0, "miss": 0.0}
        assert [e["started_ahead"] for e in live.events("sandbox.assigned")] == [False]


def test_when_a_request_is_refused_then_no_sandbox_is_claimed(pooled: LiveServer) -> None:
    before = claims(pooled)
    with httpx.Client(base_url=pooled.url, headers={"Authorization": "Bearer nope"}) as client:
        assert client.post("/execute", json={"code": "print(1)"}).status_code == 401
    assert claims(pooled) == before
