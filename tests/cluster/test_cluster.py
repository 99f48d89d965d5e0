"""A cluster of 2 API nodes and 3 workers on loopback, real Redis, PostgreSQL and gVisor: load
across both API nodes, asynchronous executions and webhooks, and the failure semantics under
kill -9 of a worker and of an API node and restarts of Redis and PostgreSQL.

What "nothing lost, nothing run twice" is checked against: every request carries its own
`X-Request-ID`, and the shared audit log must hold exactly one `execute` record for each one
that was answered (or whose API node died waiting), none for one refused with 503, and its
chain must verify.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis

from sandgate.cluster.local import Node
from sandgate.dispatch.webhooks import SIGNATURE_HEADER, verify
from tests.cluster.conftest import Running, once_each
from tests.dispatch.receiver import receiving
from tests.helpers import leftovers_of, wait_for

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.redis,
    pytest.mark.sandbox,
    pytest.mark.postgres,
    pytest.mark.slow,
]

SLOW = "import time; time.sleep({s}); print('slept')"


def _execute(cluster: Running, url: str, rid: str, code: str) -> httpx.Response | None:
    """One synchronous /execute; None when the connection broke (its node died)."""
    try:
        with cluster.client(url, **{"X-Request-ID": rid}) as client:
            return client.post("/execute", json={"code": code})
    except httpx.TransportError:
        return None


def _state(cluster: Running, url: str, execution_id: str) -> dict[str, Any]:
    with cluster.client(url) as client:
        state: dict[str, Any] = client.get(f"/executions/{execution_id}").json()
        return state


def _ended(cluster: Running, ids: list[str]) -> list[dict[str, Any]] | None:
    states = [_state(cluster, cluster.api[1], i) for i in ids]
    return states if all(s["status"] in ("done", "failed") for s in states) else None


def _submit(cluster: Running, code: str, **body: Any) -> str:
    with cluster.client(cluster.api[0]) as client:
        answer = client.post("/executions", json={"code": code, **body})
    assert answer.status_code == 202, answer.text
    execution_id: str = answer.json()["execution_id"]
    return execution_id


def _nothing_left(cluster: Running) -> None:
    found = [item for n in cluster.workers for item in leftovers_of(n.state_dir)]
    assert not found, f"left on a worker: {found}"


def test_when_200_executions_go_to_both_api_nodes_then_each_is_answered_once_and_audited_once(
    cluster: Running,
) -> None:
    def one(i: int) -> tuple[int, httpx.Response | None]:
        return i, _execute(cluster, cluster.api[i % 2], f"load-{i}", f"print({i} * 3)")

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(200)))
    for i, answer in answers:
        assert answer is not None and answer.status_code == 200, answer and answer.text
        body = answer.json()
        assert (body["status"], body["stdout"], body["request_id"]) == (
            "ok",
            f"{i * 3}\n",
            f"load-{i}",
        )
    execution_ids = {a.json()["execution_id"] for _i, a in answers if a is not None}
    assert len(execution_ids) == 200
    records = cluster.executions("load-")
    assert once_each(records) == Counter({f"load-{i}": 1 for i in range(200)})
    assert {r.details["execution_id"] for r in records} == execution_ids
    for worker in cluster.workers:  # every worker took part
        with cluster.client(worker.url) as client:
            text = client.get("/metrics").text
        assert 'sandgate_executions_total{status="ok"}' in text, worker.name
    with cluster.client(cluster.api[1]) as client:
        verified = client.get("/audit/verify").json()
    assert verified["ok"], verified


def test_when_queued_on_one_api_node_then_the_other_shows_it_and_its_webhook_verifies(
    cluster: Running,
) -> None:
    secret = (cluster.local.state_dir / "secrets" / "webhook_secret").read_text().encode()
    with receiving(200) as receiver:
        execution_id = _submit(cluster, "print('async')", webhook_url=receiver.url)
        (state,) = wait_for(lambda: _ended(cluster, [execution_id]), "the end", timeout=60)
        assert state["status"] == "done" and state["response"]["stdout"] == "async\n"
        (delivery,) = wait_for(lambda: receiver.got, "the webhook", timeout=30)
    assert verify(secret, delivery.body, delivery.headers[SIGNATURE_HEADER])
    assert json.loads(delivery.body)["response"]["stdout"] == "async\n"
    (record,) = [r for r in cluster.executions() if r.details["execution_id"] == execution_id]
    assert record.status == "ok"


def test_when_a_webhook_receiver_keeps_failing_then_it_is_retried_then_dead_lettered(
    cluster: Running,
) -> None:
    with receiving(503) as receiver:
        execution_id = _submit(cluster, "print(2)", webhook_url=receiver.url)

        def dead() -> list[dict[str, Any]]:
            with cluster.client(cluster.api[1]) as client:
                listed: list[dict[str, Any]] = client.get("/executions?status=dead").json()
            return [d for d in listed if d["execution_id"] == execution_id]

        (letter,) = wait_for(dead, "the dead letter", timeout=60)
        assert len(receiver.got) == 3
    assert letter["webhook"]["state"] == "dead" and letter["webhook"]["attempts"] == 3
    assert letter["response"]["status"] == "ok"


def _busiest(cluster: Running) -> Node:
    live = wait_for(
        lambda: [w for w in cluster.live_workers() if w["running"] > 0], "a worker running"
    )
    return next(w for w in cluster.workers if w.pid == live[0]["pid"])


def test_when_a_worker_is_killed_while_running_then_its_executions_end_lost_and_never_run_twice(
    cluster: Running,
) -> None:
    ids = [_submit(cluster, SLOW.format(s=4)) for _ in range(4)]
    victim = _busiest(cluster)
    assert victim.pid is not None
    try:
        os.kill(victim.pid, signal.SIGKILL)
        cluster.local.wait(victim.pid)
        states = wait_for(lambda: _ended(cluster, ids), "every execution's end", timeout=90)
    finally:
        cluster.restart(victim)  # as its supervisor would: the new process reaps what was left
    lost = [s for s in states if s["response"]["status"] == "sandbox_error"]
    assert lost and all(f"worker lost: {victim.name}" in s["response"]["detail"] for s in lost)
    assert all(s["response"]["status"] in ("ok", "sandbox_error") for s in states)
    per_execution = once_each(cluster.executions(), key="execution_id")
    assert [per_execution[i] for i in ids] == [1, 1, 1, 1]
    wait_for(lambda: not [x for n in cluster.workers for x in leftovers_of(n.state_dir)])
    _nothing_left(cluster)


def test_when_a_worker_dies_holding_jobs_it_had_not_started_then_other_workers_run_them(
    cluster: Running,
) -> None:
    victim = cluster.workers[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGSTOP)  # its readers stay blocked in Redis, and get entries
    try:
        ids = [_submit(cluster, f"print({i})") for i in range(8)]
        raw = redis.Redis.from_url(cluster.local.manifest().redis_url, decode_responses=True)
        held = wait_for(
            lambda: [
                c
                for c in raw.xinfo_consumers("sandgate:jobs", "workers")
                if c["name"].startswith(f"{victim.name}:") and c["pending"]
            ],
            "entries delivered to the stopped worker",
        )
        raw.close()
        assert held
    finally:
        os.kill(victim.pid, signal.SIGKILL)
        cluster.local.wait(victim.pid)
    try:
        states = wait_for(lambda: _ended(cluster, ids), "every execution's end", timeout=60)
    finally:
        cluster.restart(victim)
    assert [s["response"]["stdout"] for s in states] == [f"{i}\n" for i in range(8)]
    per_execution = once_each(cluster.executions(), key="execution_id")
    assert [per_execution[i] for i in ids] == [1] * 8
    _nothing_left(cluster)


def test_when_an_api_node_is_killed_while_waiting_then_the_executions_still_end_audited_once(
    cluster: Running,
) -> None:
    api = next(n for n in cluster.local.manifest().nodes if n.name == "api-2")
    assert api.pid is not None
    try:
        with ThreadPoolExecutor(6) as pool:
            waiting = [
                pool.submit(_execute, cluster, api.url, f"orphan-{i}", SLOW.format(s=5))
                for i in range(6)
            ]
            # Killed once all six are in the queue's hands (queued or running): a request the
            # node had not queued yet would simply never have been done.
            wait_for(lambda: _in_flight(cluster) == 6, "all six queued", timeout=30)
            os.kill(api.pid, signal.SIGKILL)
            cluster.local.wait(api.pid)
            assert all(f.result() is None for f in waiting)  # nobody was answered: it died
        records = wait_for(
            lambda: (r := cluster.executions("orphan-")) and len(r) == 6 and r,
            "every execution's record",
            timeout=60,
        )
        assert once_each(records) == Counter({f"orphan-{i}": 1 for i in range(6)})
        assert {r.status for r in records} == {"ok"}
    finally:
        cluster.restart(api)  # the next tests need it, whatever happened here


def _in_flight(cluster: Running) -> int:
    """Executions queued or running, as the other API node sees them."""
    checks = cluster.ready(cluster.api[0])["checks"]
    return int(checks["queue"]["depth"]) + sum(w["running"] for w in checks["workers"]["live"])


def _running(cluster: Running) -> int:
    return sum(w["running"] for w in cluster.live_workers())


@dataclass
class Answered:
    """One request of a load: its answer (None: connection broken) and when it ran."""

    answer: httpx.Response | None
    sent: float
    ended: float


def _load_through(cluster: Running, prefix: str, stop: Any, start: Any) -> dict[str, Answered]:
    """Requests from 6 threads to both API nodes across an outage (`stop`, a probe request
    that must be refused, 2 s, `start`), until 2 s after it."""
    answers: dict[str, Answered] = {}
    over = threading.Event()

    def client_loop(t: int) -> None:
        n = 0
        while not over.is_set() and n < 40:
            rid = f"{prefix}-{t}-{n}"
            sent = time.monotonic()
            answer = _execute(cluster, cluster.api[(t + n) % 2], rid, f"print({n})")
            answers[rid] = Answered(answer, sent, time.monotonic())
            n += 1

    with ThreadPoolExecutor(6) as pool:
        loops = [pool.submit(client_loop, t) for t in range(6)]
        time.sleep(3)
        stop()
        down, probe = time.monotonic(), _execute(cluster, cluster.api[0], f"{prefix}-probe", "1")
        assert probe is not None and probe.status_code == 503, probe and probe.text
        assert probe.json()["error"]["type"] == "unavailable"
        time.sleep(2)
        start()
        up = time.monotonic()
        time.sleep(2)
        over.set()
        for loop in loops:
            loop.result()
    spanning = [a for a in answers.values() if a.sent < down and a.ended > up]
    assert any(a.answer is not None and a.answer.status_code == 200 for a in spanning), (
        "no request waited through the outage and was answered"
    )
    return answers


def _check_outage(cluster: Running, prefix: str, answers: dict[str, Answered]) -> None:
    """Answered: exactly one record. Refused (503): none, nothing ran. Nothing else."""
    statuses = Counter(a.answer.status_code if a.answer else None for a in answers.values())
    assert set(statuses) <= {200, 503}, statuses
    per_request = once_each(cluster.executions(f"{prefix}-"))
    assert per_request[f"{prefix}-probe"] == 0
    for rid, answered in answers.items():
        answer = answered.answer
        assert answer is not None
        expected = 1 if answer.status_code == 200 else 0
        assert per_request[rid] == expected, (rid, answer.status_code, answer.text)
        if answer.status_code == 503:
            assert answer.json()["error"]["type"] == "unavailable"
    for url in cluster.api:  # back without restarting any node
        answer = _execute(cluster, url, f"{prefix}-after-{url[-5:]}", "print('back')")
        assert answer is not None and answer.status_code == 200, answer and answer.text


def test_when_redis_restarts_during_load_then_nothing_is_lost_or_run_twice(
    cluster: Running,
) -> None:
    redis_server = cluster.local.redis
    answers = _load_through(cluster, "redis", redis_server.stop, redis_server.start)
    _check_outage(cluster, "redis", answers)


def test_when_postgres_restarts_during_load_then_nothing_is_lost_or_run_twice(
    cluster: Running,
) -> None:
    postgres = cluster.local.postgres
    answers = _load_through(cluster, "pg", lambda: postgres.stop("fast"), postgres.start)
    _check_outage(cluster, "pg", answers)
    with cluster.client(cluster.api[0]) as client:
        verified = client.get("/audit/verify").json()
    assert verified["ok"], verified
    _nothing_left(cluster)
