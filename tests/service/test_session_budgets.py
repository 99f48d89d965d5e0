"""Sessions under the `sessions` rate limits and the session-hours quota (issue 17): the real
app in process on the scripted backend's sessions, a real usage store and real buckets."""

from __future__ import annotations

import time
from pathlib import Path

from sandbox.base import ExecutionResult, Status
from sandbox.fake import FakeBackend
from tests.inproc import inproc
from tests.service._policies import policies_with


def _backend() -> FakeBackend:
    return FakeBackend(
        session_answer=lambda code: ExecutionResult(status=Status.OK, exit_code=0, stdout=code)
    )


def test_when_a_key_opens_and_runs_sessions_fast_then_the_sessions_bucket_refuses(
    tmp_path: Path,
) -> None:
    policies = policies_with(
        tmp_path / "policies", default={"rate_limits": {"sessions": {"rate": 0.01, "burst": 2}}}
    )
    with inproc(tmp_path / "state", _backend(), policy_dir=policies) as service:
        key = service.new_key("agent")
        created = service.request("POST", "/sessions", key=key, json={})
        assert created.status_code == 201 and created.headers["RateLimit-Remaining"] == "1"
        session = created.json()["session_id"]
        ran = service.request("POST", f"/sessions/{session}/execute", key=key, json={"code": "1"})
        assert ran.status_code == 200 and ran.headers["RateLimit-Remaining"] == "0"
        refused = service.request(
            "POST", f"/sessions/{session}/execute", key=key, json={"code": "2"}
        )
        listed = service.request("GET", "/sessions", key=key)  # not a limited call
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limited"
    assert listed.status_code == 200 and "RateLimit-Limit" not in listed.headers


def test_when_a_keys_session_hours_are_spent_then_its_next_session_is_refused(
    tmp_path: Path,
) -> None:
    policies = policies_with(
        tmp_path / "policies",
        default={"quotas": {"session_hours_per_day": 0.0001}},  # 0.36 s
    )
    with inproc(tmp_path / "state", _backend(), policy_dir=policies) as service:
        key = service.new_key("agent")
        session = service.request("POST", "/sessions", key=key, json={}).json()["session_id"]
        time.sleep(0.5)
        assert service.request("DELETE", f"/sessions/{session}", key=key).status_code == 204
        refused = service.request("POST", "/sessions", key=key, json={})
        usage = service.request("GET", "/usage", key=key).json()
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["details"][0]["quota"] == "session_hours_per_day"
    hours = next(q for q in usage["key"] if q["quota"] == "session_hours_per_day")
    assert hours["used"] >= 0.0001 and hours["left"] == 0.0
