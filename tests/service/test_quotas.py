"""Daily quotas, `GET /usage` and the host's CPU breaker (issue 17): the logic with an injectable
clock on the real SQLite usage store, and the service in process on the scripted backend (which
reports the `cpu_ms` a test scripts). Real executions exhaust them in `test_budgets_live`."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.base import ExecutionResult, ExecutionSpec, Status
from sandbox.fake import FakeBackend
from sandgate.breaker import BreakerState, CpuBreaker
from sandgate.errors import QuotaExceeded, Unavailable
from sandgate.keys import ApiKey, Scope
from sandgate.policy.loader import load_policy_set
from sandgate.quotas import Budgets
from sandgate.usage import SqliteUsageStore
from tests.inproc import InProc, inproc
from tests.service._policies import policies_with


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: dt.datetime) -> None:
        self.now = at.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


KEY = ApiKey(id="k1", name="agent", tenant="default", scopes=[Scope.EXECUTE], created_at=0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteUsageStore]:
    usage = SqliteUsageStore(tmp_path / "usage.db")
    yield usage
    usage.close()


def test_when_the_cpu_quota_is_spent_then_the_next_run_is_refused_until_midnight_utc(
    tmp_path: Path, store: SqliteUsageStore
) -> None:
    policies = load_policy_set(
        policies_with(tmp_path / "p", default={"quotas": {"cpu_seconds_per_day": 2}})
    )
    clock = Clock(dt.datetime(2026, 12, 1, 23, 59, 0, tzinfo=dt.UTC))
    budgets = Budgets(store, CpuBreaker(store, None, 60, clock), clock)

    async def scenario() -> None:
        charge = await budgets.admit_execution(KEY, policies)
        await budgets.charge_execution(KEY, 1500, charge)
        charge = await budgets.admit_execution(KEY, policies)  # 1.5 of 2: still allowed
        await budgets.charge_execution(KEY, 800, charge)
        with pytest.raises(QuotaExceeded) as refused:
            await budgets.admit_execution(KEY, policies)
        assert "cpu_seconds_per_day" in refused.value.message
        assert "2026-12-02T00:00:00Z" in refused.value.message
        assert refused.value.headers == {"Retry-After": "60"}
        clock.advance(59)  # 23:59:59: the same day
        with pytest.raises(QuotaExceeded):
            await budgets.admit_execution(KEY, policies)
        clock.advance(1)  # midnight UTC: a new day
        await budgets.admit_execution(KEY, policies)

    asyncio.run(scenario())
    report = budgets.report(KEY, policies)
    assert report.day == "2026-12-02" and report.key[1].used == 0.0


def test_when_the_breaker_trips_then_it_refuses_then_probes_and_closes(
    store: SqliteUsageStore,
) -> None:
    clock = Clock(dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC))
    moves: list[BreakerState] = []
    breaker = CpuBreaker(store, 10.0, 30, clock, on_change=lambda s, _u: moves.append(s))
    assert breaker.admit() is False
    breaker.record(11.0, probe=False)  # over the budget: trips
    assert breaker.state is BreakerState.OPEN and not breaker.status()["ok"]
    with pytest.raises(Unavailable) as refused:
        breaker.admit()
    assert "CPU budget" in refused.value.message and refused.value.headers == {"Retry-After": "30"}
    clock.advance(31)  # cooldown over, but the last hour is still over budget: open again
    with pytest.raises(Unavailable):
        breaker.admit()
    assert breaker.state is BreakerState.OPEN
    clock.advance(60 * 60)  # the hour that spent it has passed
    assert breaker.admit() is True  # the half-open probe
    with pytest.raises(Unavailable):
        breaker.admit()  # one probe at a time
    breaker.record(1.0, probe=True)
    assert breaker.state is BreakerState.CLOSED and breaker.status()["ok"]
    assert breaker.admit() is False
    assert moves == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


def test_when_a_probe_trips_it_again_then_the_breaker_reopens(store: SqliteUsageStore) -> None:
    clock = Clock(dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC))
    breaker = CpuBreaker(store, 10.0, 30, clock)
    breaker.record(11.0, probe=False)
    clock.advance(61 * 60)
    assert breaker.admit() is True
    breaker.record(10.5, probe=True)
    assert breaker.state is BreakerState.OPEN


def _burning(cpu_ms: int) -> FakeBackend:
    def answer(_spec: ExecutionSpec) -> ExecutionResult:
        return ExecutionResult(status=Status.OK, exit_code=0, cpu_ms=cpu_ms)

    return FakeBackend(answer)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[InProc]:
    policies = policies_with(
        tmp_path / "policies",
        default={"quotas": {"executions_per_day": 3}},
        customer_support={"tenant_quotas": {"cpu_seconds_per_day": 1.0}},
    )
    with inproc(tmp_path / "state", _burning(400), policy_dir=policies) as running:
        yield running


def test_when_a_key_runs_out_of_executions_then_429_names_the_quota_and_usage_says_so(
    service: InProc,
) -> None:
    key = service.new_key("counted")
    statuses = [
        service.request("POST", "/execute", key=key, json={"code": "1"}).status_code
        for _ in range(3)
    ]
    refused = service.request("POST", "/execute", key=key, json={"code": "1"})
    assert statuses == [200, 200, 200] and refused.status_code == 429
    error = refused.json()["error"]
    assert error["type"] == "quota_exceeded" and "executions_per_day" in error["message"]
    assert error["details"][0]["quota"] == "executions_per_day"
    assert int(refused.headers["Retry-After"]) > 0
    usage = service.request("GET", "/usage", key=key).json()
    executions = next(q for q in usage["key"] if q["quota"] == "executions_per_day")
    assert executions == {"quota": "executions_per_day", "used": 3, "limit": 3, "left": 0}
    cpu = next(q for q in usage["key"] if q["quota"] == "cpu_seconds_per_day")
    assert cpu["used"] == pytest.approx(1.2) and cpu["limit"] is None
    refusal, read = service.records()[-2:]
    assert (refusal.action, refusal.details["error"]) == ("rate_limited", "quota_exceeded")
    assert read.action == "usage.read"


def test_when_a_tenant_spends_its_cpu_then_all_of_its_keys_are_refused(service: InProc) -> None:
    first, second = (service.new_key(n, tenant="support") for n in ("s1", "s2"))
    assert service.request("POST", "/execute", key=first, json={"code": "1"}).status_code == 200
    assert service.request("POST", "/execute", key=second, json={"code": "1"}).status_code == 200
    assert service.request("POST", "/execute", key=first, json={"code": "1"}).status_code == 200
    refused = service.request("POST", "/execute", key=second, json={"code": "1"})
    assert refused.status_code == 429 and "tenant" in refused.json()["error"]["message"]


def test_when_usage_of_another_key_is_asked_then_only_an_admin_sees_it(service: InProc) -> None:
    agent = service.new_key("agent")
    agent_id = service.request("GET", "/usage", key=agent).json()["key_id"]
    other = service.new_key("other")
    assert service.request("GET", f"/usage?key_id={agent_id}", key=other).status_code == 403
    seen = service.request("GET", f"/usage?key_id={agent_id}")
    assert seen.status_code == 200 and seen.json()["key_id"] == agent_id
    assert service.request("GET", "/usage?key_id=nope").status_code == 404


def test_when_the_host_breaker_trips_then_executions_get_503_and_ready_says_why(
    tmp_path: Path,
) -> None:
    with inproc(tmp_path / "state", _burning(1500), cpu_budget_per_hour=1.0) as service:
        assert service.request("POST", "/execute", json={"code": "1"}).status_code == 200
        refused = service.request("POST", "/execute", json={"code": "1"})
        ready = service.client.get("/ready")
        metrics = service.request("GET", "/metrics").text
        screened = service.request("POST", "/screen", json={"text": "hi", "stage": "input"})
    assert refused.status_code == 503 and "CPU budget" in refused.json()["error"]["message"]
    assert ready.status_code == 503
    assert ready.json()["checks"]["cpu_budget"]["state"] == "open"
    assert "CPU budget tripped" in ready.json()["checks"]["cpu_budget"]["detail"]
    assert "sandgate_cpu_budget_tripped 1.0" in metrics
    assert screened.status_code == 200  # screening runs no code: not refused


def test_when_session_hours_are_spent_then_a_new_session_is_refused(
    tmp_path: Path, store: SqliteUsageStore
) -> None:
    policies = load_policy_set(
        policies_with(tmp_path / "p", default={"quotas": {"session_hours_per_day": 1.5}})
    )
    clock = Clock(dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC))
    refusals: list[str] = []
    breaker = CpuBreaker(store, None, 60, clock)
    budgets = Budgets(store, breaker, clock, on_refused=refusals.append)

    async def scenario() -> None:
        await budgets.admit_session(KEY, policies)
        await budgets.charge_session_hours(
            KEY.id, KEY.tenant, 1.0
        )  # the session code charges as it goes
        await budgets.admit_session(KEY, policies)
        await budgets.charge_session_hours(KEY.id, KEY.tenant, 0.5)
        with pytest.raises(QuotaExceeded) as refused:
            await budgets.admit_session(KEY, policies)
        assert "session_hours_per_day" in refused.value.message
        await budgets.admit_execution(KEY, policies)  # executions have no quota here

    asyncio.run(scenario())
    assert refusals == ["quota_exceeded"]
    lines = budgets.report(KEY, policies).key
    hours = next(q for q in lines if q.quota == "session_hours_per_day")
    assert (hours.used, hours.limit, hours.left) == (1.5, 1.5, 0.0)
