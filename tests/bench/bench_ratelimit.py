"""What rate limiting costs `/screen`, in one service: a key whose policy sets no limits and one
whose policy and tenant both do (buckets large enough never to refuse), alternated request by
request on one connection; then the same with the buckets in a real redis-server; and
`RateLimiter.admit` alone, in process.

The target (issue 17): under 0.2 ms added to the p50 of `/screen` with in-memory buckets.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import tempfile
import time
from pathlib import Path

from sandgate.policy.loader import load_policy_set
from sandgate.ratelimit import RateLimiter
from tests.bench._stats import percentile
from tests.bench.bench_execute import _state_dir
from tests.conftest import ADMIN_KEY
from tests.helpers import start_server
from tests.redisserver import redis_server
from tests.service._policies import policies_with

ROUNDS = 1000
CALLS = 20_000
BODY = json.dumps({"text": "Please summarise the meeting notes.", "stage": "input"}).encode()
WIDE = {"rate": 100_000, "burst": 100_000}


def _limited_policies() -> Path:
    """The shipped policies plus `limited` (key and tenant limits), bound to the key name
    `limited-agent` and the tenant `limited`."""
    limits = {"execute": WIDE, "screen": WIDE, "sessions": WIDE}
    directory = policies_with(
        Path(tempfile.mkdtemp(prefix="sandgate-bench-policies-")) / "policies",
        bindings={"keys": {"limited-agent": "limited"}, "tenants": {"limited": "limited"}},
    )
    (directory / "limited.yaml").write_text(
        json.dumps({"extends": "default", "rate_limits": limits, "tenant_rate_limits": limits})
    )
    return directory


def _post(conn: http.client.HTTPConnection, key: str) -> tuple[float, bool]:
    started = time.perf_counter()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request("POST", "/screen", BODY, headers)
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    assert response.status == 200, response.status
    return elapsed, response.getheader("RateLimit-Limit") is not None


def _compare(label: str, env: dict[str, str]) -> None:
    base = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_LOG_LEVEL": "warning"}
    with start_server(_state_dir(), base | env) as live:
        free = live.new_key("free-agent", tenant="free")
        limited = live.new_key("limited-agent", tenant="limited")
        host, port = live.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        for _ in range(50):  # warm the route for both keys
            _post(conn, free), _post(conn, limited)
        off_s: list[float] = []
        on_s: list[float] = []
        for _ in range(ROUNDS):  # alternate, so drift hits both alike
            elapsed, headers = _post(conn, free)
            assert not headers
            off_s.append(elapsed)
            elapsed, headers = _post(conn, limited)
            assert headers, "the limited key's answer has no RateLimit headers"
            on_s.append(elapsed)
        conn.close()
    p50_off, p50_on = percentile(off_s, 50) * 1000, percentile(on_s, 50) * 1000
    print(
        f"  {label:26s} p50 off {p50_off:6.3f} ms  on {p50_on:6.3f} ms  "
        f"added {p50_on - p50_off:+.3f} ms  (p95 {percentile(off_s, 95) * 1000:.2f} / "
        f"{percentile(on_s, 95) * 1000:.2f})",
        flush=True,
    )


def _admit_cost(redis_url: str | None) -> float:
    policies = load_policy_set(_limited_policies())
    bound = policies.policies["limited"]

    async def calls() -> float:
        limiter = RateLimiter(redis_url)
        try:
            n = CALLS if redis_url is None else CALLS // 10
            started = time.perf_counter()
            for i in range(n):
                await limiter.admit(f"k{i % 50}", bound, "limited", policies, "screen")
            return (time.perf_counter() - started) / n
        finally:
            await limiter.close()

    return asyncio.run(calls()) * 1e6


def run() -> None:
    """Print the p50 cost of rate limiting on /screen, in memory and in Redis."""
    policy_dir = str(_limited_policies())
    print(f"  RateLimiter.admit alone (key + tenant): memory {_admit_cost(None):.1f} µs a call")
    _compare("/screen, memory buckets", {"SANDGATE_POLICY_DIR": policy_dir})
    with redis_server() as url:
        print(f"  RateLimiter.admit alone (key + tenant): redis {_admit_cost(url):.1f} µs a call")
        env = {"SANDGATE_POLICY_DIR": policy_dir, "SANDGATE_REDIS_URL": url}
        _compare("/screen, Redis buckets", env)
