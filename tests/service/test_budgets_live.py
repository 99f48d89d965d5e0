"""Quotas and the CPU breaker charged from real executions in real gVisor (issue 17): the
`cpu_ms` each run measured is what is counted, and the next run is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import start_server
from tests.service._policies import policies_with

pytestmark = [pytest.mark.sandbox, pytest.mark.live, pytest.mark.slow]

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}:\n    pass\n"


def test_when_real_runs_spend_the_cpu_quota_and_the_host_budget_then_the_next_are_refused(
    tmp_path: Path,
) -> None:
    policies = policies_with(
        tmp_path / "policies",
        bindings={"keys": {"frugal": "strict"}},
        strict={"quotas": {"cpu_seconds_per_day": 0.3}},
    )
    env = {
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_POLICY_DIR": str(policies),
        "SANDGATE_CPU_BUDGET_PER_HOUR": "1.5",
    }
    with start_server(make_state_dir(tmp_path / "state"), env) as live:
        frugal = live.new_key("frugal")
        with live.client(frugal) as client:
            first = client.post("/execute", json={"code": BURN.format(s=0.4)}).json()
            assert first["status"] == "ok" and first["cpu_ms"] >= 300, first
            refused = client.post("/execute", json={"code": "print(1)"})
            usage = client.get("/usage").json()
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["details"][0]["quota"] == "cpu_seconds_per_day"
        cpu = next(q for q in usage["key"] if q["quota"] == "cpu_seconds_per_day")
        assert cpu["used"] == pytest.approx(first["cpu_ms"] / 1000, abs=0.002)
        assert cpu["left"] == 0.0
        with live.client() as admin:
            spent = admin.post("/execute", json={"code": BURN.format(s=1.2)}).json()
            assert spent["status"] == "ok", spent
            tripped = admin.post("/execute", json={"code": "print(1)"})
            ready = admin.get("/ready")
            metrics = admin.get("/metrics").text
    assert first["cpu_ms"] + spent["cpu_ms"] >= 1500
    assert tripped.status_code == 503 and "CPU budget" in tripped.json()["error"]["message"]
    assert ready.status_code == 503 and ready.json()["checks"]["cpu_budget"]["state"] == "open"
    assert "sandgate_cpu_budget_tripped 1.0" in metrics
