"""Scale-out: what the queue hop costs, and what several workers give on this host.

1. The hop alone: a realistic job (the default policy's screening) through the Redis dispatcher
   to a worker whose handler answers at once, against calling that handler directly; and a
   session call's hop (an API node -> the stream of the worker holding the session -> its
   reply), its handler answering at once.
2. `print(1)` over HTTP through an API node and a worker (real Redis, PostgreSQL, gVisor)
   against the all-in-one service, interleaved in the same run.
3. Sustained throughput with 1, 2 and 3 workers (2 sandboxes each; with the default warm pool,
   then without), and the CPU one execution
   costs on each side (every process of the cluster, sandboxes included), from which the
   README works out per-host capacity.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from guards import Action
from sandbox.base import ExecutionResult, Status
from sandgate.cluster.local import LocalCluster
from sandgate.cluster.redisserver import RedisServer
from sandgate.dispatch.base import Relay
from sandgate.dispatch.calls import CallChannel, CallReply, CallServer, SessionCall
from sandgate.dispatch.streams import RedisDispatcher
from sandgate.metrics import Metrics
from sandgate.models import ExecuteResponse
from sandgate.pipeline import outcome
from sandgate.pipeline.job import Job
from sandgate.pipeline.screening import Screened, StageScreening
from tests.bench._stats import summary
from tests.conftest import ADMIN_KEY, SHARED_IMAGES
from tests.dispatch.jobs import make_job
from tests.helpers import LiveServer, start_server

HOP_RUNS = 500
RUNS = 40
THROUGHPUT_RUNS = 36
ENV = {
    "SANDGATE_API_KEY": ADMIN_KEY,
    "SANDGATE_MAX_CONCURRENCY": "2",
    "SANDGATE_QUEUE_TIMEOUT_S": "120",
    "SANDGATE_LOG_LEVEL": "warning",
}


def _dispatcher(server: RedisServer, node: str) -> RedisDispatcher:
    return RedisDispatcher(
        server.url, node=node, capacity=2, max_depth=1000, ttl_s=600, dead_after_s=10,
        webhooks=None, metrics=Metrics(), grace_s=5,
    )  # fmt: skip


async def _hop(server: RedisServer) -> tuple[list[float], list[float]]:
    result = ExecutionResult(status=Status.OK, exit_code=0, stdout="1\n")
    texts = {"stdout": "1\n", "stderr": ""}
    output = Screened(stage=StageScreening(verdict=Action.ALLOW), results={}, texts=texts)

    async def handler(job: Job, _relay: Relay | None = None) -> ExecuteResponse:
        return outcome.answer(job, result, output)

    api, worker = _dispatcher(server, "api"), _dispatcher(server, "worker")
    await api.open(None, None)
    await worker.open(handler, answer_lost)
    hop, direct = [], []
    for _ in range(20):  # warm-up: connections, scripts
        await api.call(make_job(), start_within=5, finish_within=5)
    for _ in range(HOP_RUNS):
        job = make_job()
        started = time.perf_counter()
        await handler(job)
        direct.append(time.perf_counter() - started)
        job = make_job()
        started = time.perf_counter()
        state = await api.call(job, start_within=5, finish_within=5)
        hop.append(time.perf_counter() - started)
        assert state.status == "done"
    await worker.close()
    await api.close()
    return hop, direct


async def _session_hop(server: RedisServer) -> list[float]:
    """A session call sent and its reply read, the worker's handler answering at once."""

    async def handler(call: SessionCall, _channel: CallChannel) -> CallReply:
        return CallReply(result={"execution_count": 1}, recorded=True)

    api, worker = _dispatcher(server, "api"), _dispatcher(server, "worker")
    server_side = CallServer(worker.redis, worker.consumer, handler)
    server_side.start()
    key = make_job().key
    hops = []
    for i in range(20 + HOP_RUNS):  # the first 20 warm up connections
        call = SessionCall(
            op="execute", key=key, request_id=f"bench-{i}", client=None, session_id="ss_bench",
            deadline=time.time() + 30,
        )  # fmt: skip
        started = time.perf_counter()
        reply = await (await api.calls.send(worker.consumer, call)).reply()
        if i >= 20:
            hops.append(time.perf_counter() - started)
        assert reply.result == {"execution_count": 1}
    await server_side.close(5)
    await worker.close()
    await api.close()
    return hops


async def answer_lost(job: Job, worker: str) -> ExecuteResponse:
    """Never called here: no worker dies in a benchmark."""
    return outcome.lost(job, worker)


def _state_dir(prefix: str) -> Path:
    state = Path(tempfile.mkdtemp(prefix=prefix))
    state.chmod(0o711)  # PostgreSQL runs as `postgres` and must reach its data under it
    return state


def _timed(url: str) -> float:
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with httpx.Client(base_url=url, headers=auth, timeout=120) as client:
        started = time.perf_counter()
        response = client.post("/execute", json={"code": "print(1)"})
        elapsed = time.perf_counter() - started
    assert response.json()["status"] == "ok", response.text
    return elapsed


def _cluster_processes(local: LocalCluster) -> dict[str, list[psutil.Process]]:
    manifest = local.manifest()
    found: dict[str, list[psutil.Process]] = {"api": [], "worker": [], "engines": []}
    for node in manifest.nodes:
        assert node.pid is not None
        found[node.role].append(psutil.Process(node.pid))
    redis_pid = local.redis.pid
    assert redis_pid is not None
    postmaster = int((local.postgres.data / "postmaster.pid").read_text().split()[0])
    found["engines"] += [psutil.Process(redis_pid), psutil.Process(postmaster)]
    return found


def _cpu(processes: list[psutil.Process]) -> float:
    """CPU seconds of processes and their reaped children, plus their live children's own."""
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system + times.children_user + times.children_system
        for child in process.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += child_times.user + child_times.system
    return total


def _pools_full(local: LocalCluster, timeout: float = 120) -> None:
    """Wait until every worker's warm pool holds its target of every class."""
    deadline = time.monotonic() + timeout
    for node in (n for n in local.manifest().nodes if n.role == "worker"):
        while time.monotonic() < deadline:
            pool = httpx.get(f"{node.url}/ready", timeout=10).json().get("pool", {})
            if all(c["ready"] >= c["target"] for c in pool.values()):
                break
            time.sleep(0.5)


def _throughput(workers: int, pool_size: str) -> tuple[float, dict[str, float]]:
    state = _state_dir("sandgate-bench-cluster-")
    local = LocalCluster(state, images=SHARED_IMAGES, env=ENV | {"SANDGATE_POOL_SIZE": pool_size})
    try:
        ready = local.up(1, workers)
        url = ready["api"][0]
        _timed(url)
        _pools_full(local)  # the pools' first fill is start-up, not the executions' cost
        processes = _cluster_processes(local)
        before = {role: _cpu(p) for role, p in processes.items()}
        started = time.perf_counter()
        with ThreadPoolExecutor(2 * workers + 2) as pool:
            list(pool.map(lambda _: _timed(url), range(THROUGHPUT_RUNS)))
        rate = THROUGHPUT_RUNS / (time.perf_counter() - started)
        cpu = {role: (_cpu(p) - before[role]) / THROUGHPUT_RUNS for role, p in processes.items()}
        return rate, cpu
    finally:
        local.down()
        shutil.rmtree(state, ignore_errors=True)


def run() -> None:
    """Print the hop's cost, the HTTP latency against the all-in-one service, and throughput."""
    redis_dir = Path(tempfile.mkdtemp(prefix="sandgate-bench-redis-"))
    server = RedisServer(redis_dir)
    server.start()
    try:
        hop, direct = asyncio.run(_hop(server))
        session_hop = asyncio.run(_session_hop(server))
    finally:
        server.stop()
        shutil.rmtree(redis_dir, ignore_errors=True)
    (h50, h95), (d50, d95) = summary(hop), summary(direct)
    print(f"the queue hop alone, {HOP_RUNS} jobs      p50 ms   p95 ms")
    print(f"  through Redis (api -> worker)  {h50:7.2f}  {h95:7.2f}")
    print(f"  handler called directly        {d50:7.2f}  {d95:7.2f}")
    print(f"  added by the hop               {h50 - d50:7.2f}  {h95 - d95:7.2f}")
    s50, s95 = summary(session_hop)
    print(f"  a session call's hop (routed)  {s50:7.2f}  {s95:7.2f}")

    single = Path(tempfile.mkdtemp(prefix="sandgate-bench-all-"))
    (single / "images").symlink_to(SHARED_IMAGES)
    cluster_dir = _state_dir("sandgate-bench-cluster-")
    local = LocalCluster(cluster_dir, images=SHARED_IMAGES, env=ENV)
    try:
        with start_server(single, ENV) as live:
            api_url = local.up(1, 1)["api"][0]
            together, split = _interleaved(live, api_url)
    finally:
        local.down()
        shutil.rmtree(cluster_dir, ignore_errors=True)
    (a50, a95), (c50, c95) = summary(together), summary(split)
    print(f"print(1) over HTTP, {RUNS} runs each      p50 ms   p95 ms")
    print(f"  all-in-one (role all)          {a50:7.1f}  {a95:7.1f}")
    print(f"  API node -> Redis -> worker    {c50:7.1f}  {c95:7.1f}")
    print(f"  ratio                          {c50 / a50:7.2f}x {c95 / a95:7.2f}x")

    print(f"sustained throughput, {THROUGHPUT_RUNS} executions, {os.cpu_count()} cores")
    print("  pool  workers   exec/s   CPU ms per execution: API node  workers  Redis+PostgreSQL")
    for pool_size in ("2", "0"):  # the default warm pool, then none (every sandbox cold)
        for workers in (1, 2, 3):
            rate, cpu = _throughput(workers, pool_size)
            print(
                f"  {pool_size:>4}  {workers:7d}  {rate:7.2f}  {cpu['api'] * 1000:30.0f}"
                f"  {cpu['worker'] * 1000:7.0f}  {cpu['engines'] * 1000:16.0f}"
            )


def _interleaved(live: LiveServer, api_url: str) -> tuple[list[float], list[float]]:
    _timed(live.url)  # warm-up: page cache, connections
    _timed(api_url)
    together, split = [], []
    for _ in range(RUNS):
        together.append(_timed(live.url))
        split.append(_timed(api_url))
    return together, split
