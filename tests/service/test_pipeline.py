"""The /execute pipeline above the sandbox, in process on a scripted backend: what reaches the
sandbox, what is refused before it, what of the output is returned, and what the one audit
record keeps. Real policies, real screening, a real audit log."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.base import ExecutionResult, ExecutionSpec, Status
from sandbox.fake import FakeBackend
from sandgate.audit.base import AuditRecord
from sandgate.errors import PolicyRefused
from sandgate.models import ExecuteRequest
from sandgate.pipeline.admission import admit_execution
from sandgate.policy.loader import ResolvedPolicy, load_policy_set
from sandgate.settings import REPO_ROOT
from tests.inproc import inproc

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def _printing(stdout: str) -> FakeBackend:
    return FakeBackend(
        lambda _s: ExecutionResult(
            status=Status.OK, exit_code=0, stdout=stdout, stdout_base64="cmF3"
        )
    )


def _run(tmp_path: Path, backend: FakeBackend, **body: Any) -> tuple[Any, list[AuditRecord]]:
    with inproc(tmp_path / "state", backend) as service:
        response = service.request("POST", "/execute", json={"code": "print(1)", **body})
        return response, [r for r in service.records() if r.request_id]


def test_when_policy_has_limits_then_the_sandbox_gets_them(tmp_path: Path) -> None:
    backend = FakeBackend()
    response, _ = _run(tmp_path, backend, policy="strict", timeout_s=2)
    assert response.status_code == 200, response.text
    (spec,) = backend.runs
    assert (spec.limits.memory_mb, spec.limits.timeout_s, spec.egress) == (128, 2, None)


def test_when_policy_has_egress_then_the_sandbox_gets_its_allowlist(tmp_path: Path) -> None:
    backend = FakeBackend()
    with inproc(tmp_path / "state", backend) as service:
        key = service.new_key("analyst", tenant="finance")
        assert service.request("POST", "/execute", key=key, json={"code": "1"}).status_code == 200
    (spec,) = backend.runs
    assert spec.egress is not None
    assert spec.egress.allow == ("pypi.org:443", "files.pythonhosted.org:443")


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"timeout_s": 11}, 422, "timeout_s"),
        ({"code": "#" * 300_000}, 413, "code"),
        ({"files": {f"f{i}": "" for i in range(9)}}, 422, "files"),
        ({"files": {"big": "x" * 300_000}}, 413, "files"),
    ],
)
def test_when_request_exceeds_the_policy_then_refused_before_the_sandbox(
    tmp_path: Path, body: dict[str, Any], status: int, field: str
) -> None:
    backend = FakeBackend()
    with inproc(tmp_path / "state", backend) as service:
        response = service.request(
            "POST", "/execute", json={"code": "print(1)", "policy": "strict", **body}
        )
        (record,) = [r for r in service.records() if r.request_id]
    assert response.status_code == status
    assert response.json()["error"]["details"][0]["loc"] == ["body", field]
    assert backend.runs == []
    assert record.status == str(status)


def _policies_with(tmp_path: Path, name: str, text: str) -> Path:
    """The shipped policies plus `name`, bound to keys named `name`."""
    directory = tmp_path / "policies"
    shutil.copytree(REPO_ROOT / "policies", directory)
    (directory / f"{name}.yaml").write_text(text)
    bindings = directory / "bindings.yaml"
    bindings.write_text(bindings.read_text().replace("keys: {}", f"keys: {{{name}: {name}}}"))
    return directory


def test_when_language_is_not_in_the_policy_then_policy_refused() -> None:
    default = load_policy_set(REPO_ROOT / "policies").policies["default"]
    no_language = default.policy.model_copy(update={"languages": []})
    with pytest.raises(PolicyRefused, match="language 'python' is not allowed"):
        admit_execution(ExecuteRequest(code="1"), ResolvedPolicy("x", no_language, "h", "s", 0))


def test_when_code_is_blocked_then_the_backend_is_never_called(tmp_path: Path) -> None:
    backend = FakeBackend()
    response, (record,) = _run(tmp_path, backend, code=f"k = '{AWS_KEY}'")
    body = response.json()
    assert (body["status"], body["exit_code"], backend.runs) == ("blocked", None, [])
    assert record.status == "blocked" and AWS_KEY not in record.content["code"]


def test_when_code_is_redacted_then_the_sandbox_runs_the_redacted_code(tmp_path: Path) -> None:
    policies = _policies_with(
        tmp_path,
        "redacting",
        "extends: strict\nscreening:\n  code:\n    detector_actions: {secrets: redact}\n",
    )
    backend = FakeBackend()
    with inproc(tmp_path / "state", backend, policy_dir=policies) as service:
        key = service.new_key("redacting")
        response = service.request("POST", "/execute", key=key, json={"code": f"k = '{AWS_KEY}'"})
        assert response.status_code == 200, response.text
    assert backend.runs[0].code == "k = '<AWS_ACCESS_KEY>'"


def test_when_output_has_pii_then_redacted_and_raw_bytes_dropped(tmp_path: Path) -> None:
    response, (record,) = _run(tmp_path, _printing("mail bob@example.com\n"))
    body = response.json()
    assert (body["stdout"], body["stdout_base64"]) == ("mail <EMAIL_ADDRESS>\n", None)
    assert record.content["stdout"] == "mail <EMAIL_ADDRESS>\n"


def test_when_output_is_blocked_then_withheld(tmp_path: Path) -> None:
    response, _ = _run(tmp_path, _printing(AWS_KEY), policy="strict")
    body = response.json()
    assert body["output_withheld"] and body["stdout"] == ""


def test_when_output_is_clean_then_bytes_pass_untouched(tmp_path: Path) -> None:
    response, _ = _run(tmp_path, _printing("fine\n"))
    assert (response.json()["stdout"], response.json()["stdout_base64"]) == ("fine\n", "cmF3")


def test_when_the_backend_is_down_then_503_and_recorded(tmp_path: Path) -> None:
    response, (record,) = _run(tmp_path, FakeBackend(unavailable="daemon gone"))
    assert response.status_code == 503 and "daemon gone" in response.json()["error"]["message"]
    assert (record.action, record.status) == ("request.failed", "503")


def test_when_every_slot_is_held_then_429_busy_with_retry_after(tmp_path: Path) -> None:
    release = threading.Event()

    def slow(_spec: ExecutionSpec) -> ExecutionResult:
        release.wait(5)  # holds the only slot (the fake runs on the event loop's thread)
        return ExecutionResult(status=Status.OK, exit_code=0)

    with inproc(
        tmp_path / "state", FakeBackend(slow), max_concurrency=1, queue_timeout_s=0.2
    ) as service:
        first = threading.Thread(
            target=service.request, args=("POST", "/execute"), kwargs={"json": {"code": "1"}}
        )
        first.start()
        time.sleep(0.2)
        with inproc(tmp_path / "state", max_concurrency=1, queue_timeout_s=0.2) as other:
            busy = other.request("POST", "/execute", json={"code": "2"})
            (record,) = [r for r in other.records() if r.status == "429"]
        release.set()
        first.join()
    assert busy.status_code == 429
    assert busy.json()["error"]["type"] == "busy" and busy.headers["retry-after"] == "1"
    assert record.action == "rate_limited"
