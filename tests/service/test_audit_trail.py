"""Every answered request has one audit record, whatever it answered (issue 11, finding 4 and
the audit rule): what does not fit a record is scrubbed or cut, never refused; only a store that
is down stops a request, and then before anything runs. In process, on the scripted backend,
with real screening and a real SQLite audit log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.base import ExecutionResult, ExecutionSpec, Status
from sandbox.fake import FakeBackend
from sandgate.audit.base import MAX_EVENT_BYTES, AuditRecord
from sandgate.audit.chain import canonical
from tests.inproc import InProc, inproc

KEY_SHAPED = "sg_" + "abcdefghijklmnopqrstuvwxyzab"  # 28 letters after the prefix
EMAILS = " ".join(f"user{i}@example.com" for i in range(5000))


def _printing(text: str) -> FakeBackend:
    def answer(_spec: ExecutionSpec) -> ExecutionResult:
        return ExecutionResult(status=Status.OK, exit_code=0, stdout=text)

    return FakeBackend(answer)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[InProc]:
    with inproc(tmp_path / "state") as running:
        yield running


def _answered(service: InProc) -> list[AuditRecord]:
    records = [r for r in service.records() if r.request_id is not None]
    assert service.services.auditor.store.verify(service.services.auditor.hmac_key).ok
    return records


def _raw(record: AuditRecord) -> str:
    return canonical(record.model_dump())


def test_when_a_file_name_is_key_shaped_then_the_code_runs_and_the_record_scrubs_it(
    service: InProc,
) -> None:
    response = service.request("POST", "/execute", json={"code": "1", "files": {KEY_SHAPED: "x"}})
    assert response.status_code == 200, response.text
    (record,) = _answered(service)
    assert record.action == "execute" and record.status == "ok"
    assert KEY_SHAPED not in _raw(record)
    assert record.details["files"] == ["sg_[REDACTED]"]


def test_when_the_policy_field_is_key_shaped_then_403_and_recorded(service: InProc) -> None:
    response = service.request("POST", "/execute", json={"code": "1", "policy": KEY_SHAPED})
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "policy_refused"
    (record,) = _answered(service)
    assert (record.action, record.status) == ("policy.refused", "403")
    assert KEY_SHAPED not in _raw(record)


def test_when_a_wrong_key_asks_for_a_key_shaped_path_then_401_and_recorded(
    service: InProc,
) -> None:
    response = service.request("GET", f"/policies/{KEY_SHAPED}", key="sg_wrong_" + "x" * 30)
    assert response.status_code == 401
    (record,) = _answered(service)
    assert (record.action, record.status, record.key_id) == ("auth.denied", "401", None)
    assert KEY_SHAPED not in _raw(record) and "sg_wrong" not in _raw(record)


def test_when_output_holds_5000_emails_then_redacted_and_one_record_that_fits(
    tmp_path: Path,
) -> None:
    with inproc(tmp_path / "state", _printing(EMAILS)) as service:
        response = service.request("POST", "/execute", json={"code": "print('...')"})
        assert response.status_code == 200, response.text
        body = response.json()
        assert "user17@example.com" not in body["stdout"]
        assert len(body["screening"]["output"]["findings"]) == 5000
        (record,) = _answered(service)
    output = record.details["screening"]["output"]  # type: ignore[index, call-overload]
    assert len(output["findings"]) == 100
    assert output["more_findings"] == {"EMAIL_ADDRESS": 4900}
    assert len(_raw(record).encode()) < MAX_EVENT_BYTES


def test_when_screen_text_holds_3000_emails_then_answered_and_recorded(service: InProc) -> None:
    text = " ".join(f"person{i}@example.org" for i in range(3000))
    response = service.request("POST", "/screen", json={"text": text, "stage": "output"})
    assert response.status_code == 200
    assert response.json()["verdict"] == "redact"
    (record,) = _answered(service)
    assert record.action == "screen"
    assert record.details["more_findings"] == {"EMAIL_ADDRESS": 2900}
    assert len(record.content["text"]) <= 4096


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "action"),
    [
        ("GET", "/metrics", {}, 200, "metrics.read"),
        ("GET", "/policies", {}, 200, "policies.list"),
        ("GET", "/policies/nope", {}, 404, "request.invalid"),
        ("GET", "/audit/verify", {}, 200, "audit.verify"),
        ("GET", "/no/such/route", {}, 404, "request.invalid"),
        ("DELETE", "/execute", {}, 405, "request.invalid"),
        ("POST", "/execute", {"content": b"x" * (3 << 20)}, 413, "request.invalid"),
        (
            "POST",
            "/execute",
            {"content": b"{}", "headers": {"Content-Type": "text/plain"}},
            415,
            "request.invalid",
        ),  # fmt: skip
    ],
)
def test_when_any_request_is_answered_then_it_has_one_record(
    service: InProc, method: str, path: str, kwargs: dict[str, object], status: int, action: str
) -> None:
    response = service.request(method, path, **kwargs)
    assert response.status_code == status
    (record,) = _answered(service)
    assert (record.action, record.status) == (action, str(status))
    assert record.request_id == response.headers["x-request-id"]
    # Who asked is known once a route authenticated the key (not for 404/405/413 before that).
    assert (record.key_id is None) == (status in (405, 413) or path == "/no/such/route")


def test_when_liveness_and_readiness_are_probed_then_nothing_is_recorded(service: InProc) -> None:
    assert service.client.get("/health").status_code == 200
    service.client.get("/ready")
    assert _answered(service) == []


def test_when_the_store_is_down_then_nothing_runs_and_503(tmp_path: Path) -> None:
    backend = FakeBackend()
    with inproc(tmp_path / "state", backend) as service:
        service.services.auditor.store.close()
        response = service.request("POST", "/execute", json={"code": "print(1)"})
        refused = service.request("GET", "/metrics", key="sg_nobody_" + "y" * 30)
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "unavailable"
    assert backend.runs == []
    assert refused.status_code == 503  # a refusal that cannot be recorded is not answered
