"""The Redis dispatcher's rules on a real redis-server, with scripted handlers in place of the
sandbox (the same rules with real gVisor and real process deaths: `tests/cluster`).

A job starts only from `queued`; a consumer that died before starting its job leaves it to
another; one that died while running it leaves a `worker lost` ending, never a second run;
Redis going away refuses new work and the rest carries on once it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from sandgate.cluster.redisserver import RedisServer
from sandgate.dispatch import _scripts as keys
from sandgate.dispatch.base import (
    ExecutionState,
    Failure,
    QueueFull,
    QueueUnavailable,
    Relay,
)
from sandgate.dispatch.consumer import Heartbeat
from sandgate.dispatch.streams import RedisDispatcher
from sandgate.metrics import Metrics
from sandgate.models import ExecuteResponse
from sandgate.pipeline import outcome
from sandgate.pipeline.job import Job
from tests.dispatch.jobs import make_job

pytestmark = pytest.mark.redis

DEAD_AFTER = 1.0


def dispatcher(server: RedisServer, node: str, **options: Any) -> RedisDispatcher:
    """A dispatcher on `server` (worker side once opened with handlers)."""
    settings: dict[str, Any] = {
        "node": node,
        "capacity": 2,
        "max_depth": 100,
        "ttl_s": 600,
        "dead_after_s": DEAD_AFTER,
        "webhooks": None,
        "grace_s": 5,
    }
    return RedisDispatcher(server.url, metrics=Metrics(), **(settings | options))


@contextlib.asynccontextmanager
async def node(
    server: RedisServer, name: str, script: Script | None = None, **options: Any
) -> AsyncIterator[RedisDispatcher]:
    """A dispatcher, opened (as a worker when given a script) and closed after the block."""
    opened = dispatcher(server, name, **options)
    await opened.open(script.run if script else None, script.lose if script else None)
    try:
        yield opened
    finally:
        await opened.close()


class Script:
    """Handlers that record what they were asked to do; `hold` keeps runs from finishing."""

    def __init__(self, hold: asyncio.Event | None = None) -> None:
        self.hold = hold
        self.ran: list[str] = []
        self.lost: list[tuple[str, str]] = []
        self.lines: list[bytes] = []  # what a streamed run releases
        self.withheld = False

    async def run(self, job: Job, relay: Relay | None) -> ExecuteResponse | Failure:
        self.ran.append(job.execution_id)
        if relay is not None:
            for line in self.lines:
                await relay.relay(line)
            if self.withheld:
                await relay.withhold()
        if self.hold is not None:
            await self.hold.wait()
        return outcome.answer(job, None, None)  # any well-formed answer will do

    async def lose(self, job: Job, worker: str) -> ExecuteResponse:
        self.lost.append((job.execution_id, worker))
        return outcome.lost(job, worker)


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 10) -> Any:
    """Poll `check` until it returns something true."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()):
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)
    return value


def crash(worker: RedisDispatcher) -> None:
    """Stop a worker as a kill would: no acknowledgement, no goodbye, the heartbeat lapses."""
    inner = worker._worker
    assert inner is not None
    for loop in inner._loops:
        loop.cancel()
    for stream in inner._streams:
        for task in stream._tasks:
            task.cancel()


def test_when_a_worker_answers_then_the_caller_gets_it_and_it_ran_once(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        script = Script()
        async with node(redis_server, "api") as api, node(redis_server, "w", script):
            job = make_job()
            state = await api.call(job, start_within=5, finish_within=5)
            assert state.status == "done" and state.response is not None
            assert state.response.execution_id == job.execution_id
            assert script.ran == [job.execution_id] and script.lost == []
            stats = await api.stats()
            assert stats.depth == 0 and [w.name for w in stats.workers] == ["w"]

    asyncio.run(scenario())


class Received:
    """A waiter's relay: what reached it, in order."""

    def __init__(self) -> None:
        self.seen: list[bytes | str] = []

    async def relay(self, line: bytes) -> None:
        self.seen.append(line)

    async def withhold(self) -> None:
        self.seen.append("withheld")


def test_when_a_streamed_job_runs_then_its_lines_reach_the_waiter_in_order_before_its_end(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        script = Script()
        script.lines = [b'{"type": "stdout", "text": "%d\\n"}\n' % i for i in range(50)]
        script.withheld = True
        async with node(redis_server, "api") as api, node(redis_server, "w", script):
            received = Received()
            job = make_job().model_copy(update={"stream": True})
            state = await api.call(job, start_within=5, finish_within=5, relay=received)
            assert state.status == "done" and state.response is not None
            assert received.seen == [*script.lines, "withheld"]
            unstreamed = Received()
            await api.call(make_job(), start_within=5, finish_within=5, relay=unstreamed)
            assert unstreamed.seen == []  # a job not marked `stream` relays nothing

    asyncio.run(scenario())


def test_when_no_worker_starts_it_in_time_then_it_fails_busy_and_never_runs(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        async with node(redis_server, "api") as api:
            job = make_job()
            state = await api.call(job, start_within=0.3, finish_within=5)
            assert state.status == "failed" and state.error is not None
            assert (state.error.type, state.error.status_code) == ("busy", 429)
            script = Script()
            async with node(redis_server, "late", script):
                await asyncio.sleep(1.5)  # the worker reads the entry, finds it failed, skips it
            assert script.ran == []
            late = await api.get(job.execution_id)
            assert late is not None and late.status == "failed"
            assert (await api.stats()).depth == 0

    asyncio.run(scenario())


def test_when_the_queue_is_at_its_cap_then_submit_is_refused(redis_server: RedisServer) -> None:
    async def scenario() -> None:
        async with node(redis_server, "api", max_depth=2) as api:
            await api.submit(make_job())
            await api.submit(make_job())
            with pytest.raises(QueueFull):
                await api.submit(make_job())
            assert (await api.stats()).depth == 2

    asyncio.run(scenario())


def test_when_a_consumer_dies_before_starting_its_job_then_another_worker_runs_it(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        job = make_job()
        script = Script()
        async with node(redis_server, "api") as api:
            await api.submit(job)
            # A consumer takes the entry into its pending list and dies before it starts it.
            raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
            raw.xgroup_create("sandgate:jobs", "workers", id="0", mkstream=True)
            got = raw.xreadgroup("workers", "ghost:1:dead", {"sandgate:jobs": ">"}, count=1)
            assert got and got[0][1][0][1]["id"] == job.execution_id
            async with node(redis_server, "heir", script):
                state: ExecutionState = await until(lambda: _ended(api, job))
                assert state.status == "done"
                assert script.ran == [job.execution_id] and script.lost == []
                await until(lambda: _nothing_pending(raw))
            raw.close()

    asyncio.run(scenario())


def test_when_a_busy_worker_takes_over_a_dead_ones_job_then_its_heartbeat_never_stops(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        hold = asyncio.Event()
        script = Script(hold=hold)
        first, second = make_job(), make_job()
        async with node(redis_server, "api") as api, node(redis_server, "busy", script, capacity=1):
            await api.submit(first)
            await until(lambda: _status(api, first, "running"))  # its only reader is busy now
            await api.submit(second)
            raw = redis.Redis.from_url(redis_server.url, decode_responses=True)
            got = raw.xreadgroup("workers", "ghost:1:dead", {"sandgate:jobs": ">"}, count=1)
            raw.close()
            assert got and got[0][1][0][1]["id"] == second.execution_id
            await until(lambda: _status(api, second, "running"))  # taken over, beside the reader
            for _ in range(3):  # well past dead_after: the heartbeat went on all along
                await asyncio.sleep(DEAD_AFTER)
                assert [w.name for w in (await api.stats()).workers] == ["busy"]
            hold.set()
            await until(lambda: _ended(api, first))
            await until(lambda: _ended(api, second))
        assert script.ran == [first.execution_id, second.execution_id]

    asyncio.run(scenario())


def test_when_a_worker_dies_while_running_then_the_job_ends_lost_and_is_not_run_again(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        first, second = Script(hold=asyncio.Event()), Script()  # the first never finishes
        doomed = dispatcher(redis_server, "doomed")
        await doomed.open(first.run, first.lose)
        job = make_job()
        async with node(redis_server, "api") as api:
            await api.submit(job)
            await until(lambda: _status(api, job, "running"))
            crash(doomed)
            async with node(redis_server, "heir", second):
                state: ExecutionState = await until(lambda: _ended(api, job))
        await doomed.redis.aclose()
        assert state.status == "done" and state.response is not None
        assert state.response.status.value == "sandbox_error"
        assert "worker lost: doomed" in (state.response.detail or "")
        assert first.ran == [job.execution_id]
        assert second.ran == [] and second.lost == [(job.execution_id, "doomed")]

    asyncio.run(scenario())


def test_when_redis_is_down_then_new_work_is_refused_and_accepted_again_once_it_is_back(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        async with node(redis_server, "api") as api:
            redis_server.stop()
            with pytest.raises(QueueUnavailable):
                await api.submit(make_job())
            with pytest.raises(QueueUnavailable):
                await api.stats()
            redis_server.start()
            state = await api.submit(make_job())
            assert state.status == "queued"

    asyncio.run(scenario())


def test_when_a_heartbeat_is_missing_then_it_is_dead_only_after_redis_answered_for_3_beats(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        client = Redis.from_url(redis_server.url, decode_responses=True)
        watcher = Heartbeat(client, "me:1:aaaaaa", DEAD_AFTER)
        other = Heartbeat(client, "other:2:bbbbbb", DEAD_AFTER)
        await other.beat(0, 1)
        assert not await watcher.dead(other.consumer)
        await client.delete(keys.worker_key(other.consumer))  # its key expired
        assert not await watcher.dead(other.consumer)  # seen missing only now
        await asyncio.sleep(3 * watcher.period_s + 0.05)
        assert await watcher.dead(other.consumer)
        watcher.redis_was_away()  # every key may have expired with Redis away: look anew
        assert not await watcher.dead(other.consumer)
        await other.beat(0, 1)  # and a consumer that beats again is alive
        await asyncio.sleep(watcher.period_s)
        assert not await watcher.dead(other.consumer)
        await client.aclose()

    asyncio.run(scenario())


def test_when_redis_is_away_longer_than_dead_after_then_nobody_is_declared_dead(
    redis_server: RedisServer,
) -> None:
    async def scenario() -> None:
        hold = asyncio.Event()
        script, other = Script(hold=hold), Script(hold=hold)  # whichever starts it, holds it
        job = make_job()
        async with (
            node(redis_server, "api") as api,
            node(redis_server, "w", script),
            node(redis_server, "other", other),  # neither may take the other's job as lost
        ):
            waiting = asyncio.create_task(api.call(job, start_within=5, finish_within=30))
            await until(lambda: _status(api, job, "running"))
            await asyncio.to_thread(redis_server.stop)  # SIGTERM: the append-only file is written
            hold.set()  # the run ends while Redis is away: its worker keeps the answer, retries
            await asyncio.sleep(3 * DEAD_AFTER)  # every heartbeat key expires meanwhile
            await asyncio.to_thread(redis_server.start)
            state = await asyncio.wait_for(waiting, 30)
            await asyncio.sleep(2 * DEAD_AFTER)
        assert state.status == "done" and state.response is not None
        assert state.response.status.value != "sandbox_error"
        assert script.ran + other.ran == [job.execution_id]
        assert script.lost == [] and other.lost == []

    asyncio.run(scenario())


async def _nothing_pending(raw: redis.Redis) -> bool:
    return bool(raw.xpending("sandgate:jobs", "workers")["pending"] == 0)


async def _status(api: RedisDispatcher, job: Job, status: str) -> bool:
    state = await api.get(job.execution_id)
    return state is not None and state.status == status


async def _ended(api: RedisDispatcher, job: Job) -> ExecutionState | None:
    state = await api.get(job.execution_id)
    return state if state is not None and state.terminal else None
