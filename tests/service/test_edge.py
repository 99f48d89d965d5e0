"""Bad input is refused at the edge with a 4xx naming the field, before anything runs, and the
refusal is in the audit log (issue 11, findings 1-3 and 5). In process, on the scripted backend:
nothing here claims anything about the sandbox."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.fake import FakeBackend
from tests.inproc import InProc, inproc

SURROGATE = '"\\ud800"'  # a lone UTF-16 surrogate, as JSON carries it


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def service(tmp_path: Path, backend: FakeBackend) -> Iterator[InProc]:
    with inproc(tmp_path / "state", backend) as running:
        yield running


def _post_raw(service: InProc, path: str, body: str) -> object:
    return service.request("POST", path, content=body, headers={"Content-Type": "application/json"})


def _assert_chain_holds_every_answer(service: InProc, answered: int) -> None:
    records = service.records()
    requests = [r for r in records if r.request_id is not None]
    assert len(requests) == answered, [r.action for r in records]
    assert service.services.auditor.store.verify(service.services.auditor.hmac_key).ok


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/execute", '{"code": "print(1)", "files": {@: "x"}}', "files"),
        ("/execute", '{"code": "print(1)", "files": {"a.txt": @}}', "files"),
        ("/execute", '{"code": "print(1)", "stdin": @}', "stdin"),
        ("/execute", '{"code": @}', "code"),
        ("/execute", '{"code": "print(1)", "policy": @}', "policy"),
        ("/screen", '{"text": @, "stage": "input"}', "text"),
    ],
    ids=["file-name", "file-content", "stdin", "code", "policy", "screen-text"],
)
def test_when_text_is_not_utf8_then_422_names_the_field_and_nothing_runs(
    service: InProc, backend: FakeBackend, path: str, body: str, field: str
) -> None:
    response = _post_raw(service, path, body.replace("@", SURROGATE))
    assert response.status_code == 422, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert error["type"] == "invalid_request"
    assert field in error["message"]
    assert "UTF-8" in error["message"] or "unicode" in error["message"]
    assert backend.runs == []
    (record,) = [r for r in service.records() if r.request_id]
    assert (record.action, record.status, record.verdict) == ("request.invalid", "422", "deny")
    _assert_chain_holds_every_answer(service, 1)


@pytest.mark.parametrize(
    "name",
    ["\u20ac" * 100, "a/" * 8 + "\u20ac" * 90, "/".join(["d" * 200] * 6)],
    ids=["300-bytes-in-one-part", "270-bytes-in-the-last-part", "1206-bytes-in-all"],
)
def test_when_a_file_name_is_too_long_in_bytes_then_422(
    service: InProc, backend: FakeBackend, name: str
) -> None:
    response = service.request("POST", "/execute", json={"code": "1", "files": {name: "x"}})
    assert response.status_code == 422, response.text
    assert "too long" in response.json()["error"]["message"]
    assert backend.runs == []
    _assert_chain_holds_every_answer(service, 1)


def test_when_a_file_name_is_long_in_characters_but_fits_in_bytes_then_it_runs(
    service: InProc, backend: FakeBackend
) -> None:
    name = "\u20ac" * 85  # 255 bytes: the file system's limit exactly
    response = service.request("POST", "/execute", json={"code": "1", "files": {name: "x"}})
    assert response.status_code == 200, response.text
    assert list(backend.runs[0].files) == [name]


def test_when_yaml_is_nested_20000_deep_then_validate_is_quick_and_the_loop_stays_free(
    service: InProc,
) -> None:
    body = "limits: " + "[" * 20000 + "]" * 20000
    answers: list[float] = []

    def probe() -> None:
        while not done.is_set():
            started = time.monotonic()
            service.client.get("/health")
            answers.append(time.monotonic() - started)
            time.sleep(0.01)

    done = threading.Event()
    prober = threading.Thread(target=probe)
    prober.start()
    started = time.monotonic()
    response = service.request("POST", "/policies/validate", content=body)
    elapsed = time.monotonic() - started
    done.set()
    prober.join()
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["valid"] is False
    assert "nested deeper than 32 levels" in result["messages"][0]
    assert elapsed < 5, elapsed  # a bound, not a benchmark: it was ~20 s of a blocked loop
    assert answers and max(answers) < 2


def test_when_a_screen_only_key_validates_a_policy_then_403(service: InProc) -> None:
    key = service.new_key("screener", scopes=("screen",))
    response = service.request("POST", "/policies/validate", key=key, content="limits: {}\n")
    assert response.status_code == 403
    assert "policy:admin" in response.json()["error"]["message"]
    (record,) = [r for r in service.records() if r.request_id]
    assert (record.action, record.status) == ("forbidden", "403")


def test_when_validate_is_asked_with_get_then_405_not_a_policy_lookup(service: InProc) -> None:
    response = service.request("GET", "/policies/validate")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "method_not_allowed"
    assert service.request("GET", "/policies/default").status_code == 200


@pytest.mark.parametrize("until", ["0.5", "1700000000", "yesterday"])
def test_when_a_time_filter_is_not_iso8601_then_422(service: InProc, until: str) -> None:
    response = service.request("GET", "/audit/records", params={"until": until})
    assert response.status_code == 422
    assert "until" in response.json()["error"]["message"]


def test_when_a_time_filter_is_iso8601_then_it_filters(service: InProc) -> None:
    service.request("POST", "/screen", json={"text": "hello", "stage": "input"})
    early = service.request("GET", "/audit/records", params={"until": "2000-01-01T00:00:00Z"})
    late = service.request("GET", "/audit/records", params={"until": "2999-01-01T00:00:00+00:00"})
    assert early.json()["records"] == []
    assert any(r["action"] == "screen" for r in late.json()["records"])


def test_when_any_422_is_answered_then_its_type_is_invalid_request(service: InProc) -> None:
    schema = service.request("POST", "/execute", json={"code": 1})
    policy = service.request("POST", "/execute", json={"code": "1", "timeout_s": 1e6})
    assert schema.status_code == policy.status_code == 422
    assert schema.json()["error"]["type"] == policy.json()["error"]["type"] == "invalid_request"
