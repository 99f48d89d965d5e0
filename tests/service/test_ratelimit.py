"""Rate limits per key and per tenant (issue 17): the real app in process on the scripted
backend, real screening, a real audit log, real token buckets in memory and in a real
redis-server the test starts on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandgate.policy.loader import load_policy_set
from sandgate.ratelimit import RateLimiter
from tests.inproc import InProc, inproc
from tests.redisserver import redis_server
from tests.service._policies import policies_with

SCREEN = {"text": "The report is due on Friday.", "stage": "input"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[InProc]:
    policies = policies_with(
        tmp_path / "policies",
        default={"rate_limits": {"screen": {"rate": 1, "burst": 3}}},
        customer_support={
            "tenant_rate_limits": {"screen": {"rate": 1, "burst": 4}},
            "rate_limits": {"screen": {"rate": 100, "burst": 100}},
        },
    )
    with inproc(tmp_path / "state", policy_dir=policies) as running:
        yield running


def _screen(service: InProc, key: str) -> Any:
    return service.request("POST", "/screen", key=key, json=SCREEN)


def test_when_a_key_passes_its_burst_then_429_with_headers_and_after_retry_after_it_recovers(
    service: InProc,
) -> None:
    key = service.new_key("agent")
    answers = [_screen(service, key) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.headers["RateLimit-Remaining"] for a in answers] == ["2", "1", "0"]
    assert all(a.headers["RateLimit-Limit"] == "3" for a in answers)
    refused = service.request("POST", "/screen", key=key, json=SCREEN)
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limited"
    assert "key" in refused.json()["error"]["message"]
    retry = int(refused.headers["Retry-After"])
    assert retry == 1 and refused.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(refused.headers["RateLimit-Reset"]) <= 3
    time.sleep(retry + 0.05)
    again = _screen(service, key)
    assert again.status_code == 200


def test_when_one_key_is_limited_then_another_key_keeps_its_own_bucket(service: InProc) -> None:
    first, second = service.new_key("first"), service.new_key("second")
    while service.request("POST", "/screen", key=first, json=SCREEN).status_code == 200:
        pass
    answer = service.request("POST", "/screen", key=second, json=SCREEN)
    assert answer.status_code == 200
    assert answer.headers["RateLimit-Remaining"] == "2"


def test_when_a_tenant_limit_is_set_then_it_caps_its_keys_together(service: InProc) -> None:
    keys = [service.new_key(f"support-{i}", tenant="support") for i in range(3)]
    statuses = [
        service.request("POST", "/screen", key=keys[i % 3], json=SCREEN).status_code
        for i in range(6)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429]
    refused = service.request("POST", "/screen", key=keys[0], json=SCREEN)
    assert "tenant" in refused.json()["error"]["message"]
    other = service.new_key("elsewhere", tenant="finance")  # another tenant, no tenant limit
    assert service.request("POST", "/screen", key=other, json=SCREEN).status_code == 200


def test_when_refused_then_the_refusal_is_audited_and_counted(service: InProc) -> None:
    key = service.new_key("counted")
    for _ in range(4):
        answer = service.request("POST", "/screen", key=key, json=SCREEN)
    assert answer.status_code == 429
    refusal = [r for r in service.records() if r.action == "rate_limited"]
    assert len(refusal) == 1 and refusal[0].status == "429"
    assert refusal[0].details["error"] == "rate_limited" and refusal[0].key_name == "counted"
    metrics = service.request("GET", "/metrics").text
    assert 'sandgate_refused_total{reason="rate_limited"} 1.0' in metrics


def test_when_a_limited_route_answers_an_error_then_it_still_carries_the_headers(
    service: InProc,
) -> None:
    key = service.new_key("erring")
    refused = service.request("POST", "/screen", key=key, json={**SCREEN, "policy": "nope"})
    assert refused.status_code == 403
    assert refused.headers["RateLimit-Remaining"] == "2"
    assert "RateLimit-Limit" not in service.request("GET", "/metrics", key=key).headers


def test_when_no_limit_is_set_then_no_headers_and_no_refusal(tmp_path: Path) -> None:
    with inproc(tmp_path / "state") as service:
        answers = [_screen(service, service.new_key("free")) for _ in range(5)]
    assert all(a.status_code == 200 for a in answers)
    assert all("RateLimit-Limit" not in a.headers for a in answers)


@pytest.mark.redis
def test_when_buckets_live_in_redis_then_two_limiters_share_them(tmp_path: Path) -> None:
    policies = load_policy_set(
        policies_with(
            tmp_path / "policies", default={"rate_limits": {"execute": {"rate": 1, "burst": 5}}}
        )
    )
    bound = policies.policies["default"]

    async def run(url: str) -> list[bool]:
        workers = [RateLimiter(url), RateLimiter(url)]  # two workers or hosts
        try:
            outcomes = []
            for i in range(8):
                allowance = await workers[i % 2].admit("k1", bound, "default", policies, "execute")
                assert allowance is not None
                outcomes.append(allowance.allowed)
            return outcomes
        finally:
            for worker in workers:
                await worker.close()

    with redis_server() as url:
        assert asyncio.run(run(url)) == [True] * 5 + [False] * 3


@pytest.mark.redis
def test_when_the_service_uses_redis_then_its_limits_hold_over_http(tmp_path: Path) -> None:
    policies = policies_with(
        tmp_path / "policies", default={"rate_limits": {"screen": {"rate": 1, "burst": 2}}}
    )
    with (
        redis_server() as url,
        inproc(tmp_path / "state", policy_dir=policies, redis_url=url) as service,
    ):
        key = service.new_key("shared")
        statuses = [_screen(service, key).status_code for _ in range(3)]
        assert service.services.limiter.storage == "redis"
    assert statuses == [200, 200, 429]
