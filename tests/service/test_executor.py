"""The /execute logic above the sandbox, on a scripted backend: what reaches the sandbox, what
is refused before it, and what of the output is returned. Real policies, real screening."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from guards import GuardOptions, Screener
from sandbox.base import ExecutionResult, ExecutionSpec, Status
from sandbox.fake import FakeBackend
from sandbox.slots import SandboxSlots
from sandgate.errors import Busy, InvalidInput, PayloadTooLarge, PolicyRefused, Unavailable
from sandgate.executor import Executor
from sandgate.metrics import Metrics
from sandgate.models import ExecuteRequest
from sandgate.policy.loader import ResolvedPolicy, load_policy_set
from sandgate.settings import REPO_ROOT

POLICIES = load_policy_set(REPO_ROOT / "policies").policies
SCREENER = Screener(GuardOptions(hash_secret="unit-test-secret-value"))


def executor(tmp_path: Path, backend: FakeBackend, slots: int = 2) -> Executor:
    return Executor(backend, SandboxSlots(tmp_path / "slots", slots, 0.05), SCREENER, Metrics())


def execute(ex: Executor, policy: ResolvedPolicy = POLICIES["default"], **body: Any) -> Any:
    request = ExecuteRequest(**{"code": "print(1)", **body})
    return asyncio.run(ex.execute(request, policy, tenant="t", request_id="r"))


def test_when_policy_has_limits_then_the_sandbox_gets_them(tmp_path: Path) -> None:
    backend = FakeBackend()
    execute(executor(tmp_path, backend), POLICIES["strict"], timeout_s=2)
    (spec,) = backend.runs
    assert (spec.limits.memory_mb, spec.limits.timeout_s, spec.egress) == (128, 2, None)


def test_when_policy_has_egress_then_the_sandbox_gets_its_allowlist(tmp_path: Path) -> None:
    backend = FakeBackend()
    execute(executor(tmp_path, backend), POLICIES["data-analysis"])
    (spec,) = backend.runs
    assert spec.egress is not None
    assert spec.egress.allow == ("pypi.org:443", "files.pythonhosted.org:443")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"timeout_s": 11}, InvalidInput),
        ({"code": "#" * 300_000}, PayloadTooLarge),
        ({"files": {f"f{i}": "" for i in range(9)}}, InvalidInput),
        ({"files": {"big": "x" * 300_000}}, PayloadTooLarge),
    ],
)
def test_when_request_exceeds_the_policy_then_refused_before_the_sandbox(
    tmp_path: Path, body: dict[str, Any], error: type[Exception]
) -> None:
    backend = FakeBackend()
    with pytest.raises(error):
        execute(executor(tmp_path, backend), POLICIES["strict"], **body)
    assert backend.runs == []


def test_when_language_is_not_in_the_policy_then_refused(tmp_path: Path) -> None:
    # Only python exists today, so a policy allowing no language stands in for "not this one".
    no_language = POLICIES["default"].policy.model_copy(update={"languages": []})
    policy = ResolvedPolicy("x", no_language, "h", "s", 0)
    with pytest.raises(PolicyRefused):
        execute(executor(tmp_path, FakeBackend()), policy)


def test_when_code_is_blocked_then_the_backend_is_never_called(tmp_path: Path) -> None:
    backend = FakeBackend()
    response, kept = execute(executor(tmp_path, backend), code="k = 'AKIAIOSFODNN7EXAMPLE'")
    assert response.status is Status.BLOCKED and backend.runs == []
    assert "AKIAIOSFODNN7EXAMPLE" not in kept["code"]


def test_when_code_is_redacted_then_the_sandbox_runs_the_redacted_code(tmp_path: Path) -> None:
    backend = FakeBackend()
    policy = POLICIES["default"]
    screening = policy.policy.screening.model_copy(
        update={
            "code": policy.policy.screening.code.model_copy(
                update={"detector_actions": {"secrets": "redact"}}
            )
        }
    )
    redacting = ResolvedPolicy(
        "r", policy.policy.model_copy(update={"screening": screening}), "h", "s", 0
    )
    execute(executor(tmp_path, backend), redacting, code="k = 'AKIAIOSFODNN7EXAMPLE'")
    assert backend.runs[0].code == "k = '<AWS_ACCESS_KEY>'"


def _printing(stdout: str) -> FakeBackend:
    return FakeBackend(
        lambda _s: ExecutionResult(
            status=Status.OK, exit_code=0, stdout=stdout, stdout_base64="cmF3"
        )
    )


def test_when_output_has_pii_then_redacted_and_raw_bytes_dropped(tmp_path: Path) -> None:
    response, kept = execute(executor(tmp_path, _printing("mail bob@example.com\n")))
    assert response.stdout == "mail <EMAIL_ADDRESS>\n" and response.stdout_base64 is None
    assert kept["stdout"] == "mail <EMAIL_ADDRESS>\n"


def test_when_output_is_blocked_then_withheld(tmp_path: Path) -> None:
    response, _ = execute(executor(tmp_path, _printing("AKIAIOSFODNN7EXAMPLE")), POLICIES["strict"])
    assert response.output_withheld and response.stdout == ""


def test_when_output_is_clean_then_bytes_pass_untouched(tmp_path: Path) -> None:
    response, _ = execute(executor(tmp_path, _printing("fine\n")))
    assert (response.stdout, response.stdout_base64) == ("fine\n", "cmF3")


def test_when_the_backend_is_down_then_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="daemon gone"):
        execute(executor(tmp_path, FakeBackend(unavailable="daemon gone")))


def test_when_every_slot_is_held_then_busy_with_retry_after(tmp_path: Path) -> None:
    import time

    def slow(_spec: ExecutionSpec) -> ExecutionResult:
        time.sleep(0.3)  # holds the only slot (the fake runs synchronously)
        return ExecutionResult(status=Status.OK, exit_code=0)

    ex = executor(tmp_path, FakeBackend(slow), slots=1)
    other = Executor(FakeBackend(), SandboxSlots(tmp_path / "slots", 1, 0.05), SCREENER, Metrics())

    async def both() -> list[Any]:
        first = asyncio.create_task(asyncio.to_thread(execute, ex))
        await asyncio.sleep(0.1)
        try:
            await other.execute(
                ExecuteRequest(code="print(2)"), POLICIES["default"], tenant="t", request_id="r"
            )
        except Busy as exc:
            return [exc, await first]
        return [None, await first]

    busy, _ = asyncio.run(both())
    assert isinstance(busy, Busy) and busy.headers == {"Retry-After": "1"}
