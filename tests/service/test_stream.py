"""Streamed output is screened before it leaves: a finding split across writes is still found
whole, clean lines go out at once, a `block` stops the stream; and `/execute` with
`Accept: application/x-ndjson` answers events ending with the usual answer, audited once.
Real screening; the scripted backend (real gVisor streaming: `tests/api/test_streaming.py`)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guards import ScreeningConfig, Stage
from sandbox.base import ExecutionResult, ExecutionSpec, Status
from sandbox.fake import FakeBackend
from sandgate.pipeline.stream import HOLD, StreamScreen
from sandgate.policy.loader import load_policy_set
from sandgate.settings import REPO_ROOT
from tests.inproc import InProc, inproc, shared_screener

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
POLICIES = load_policy_set(REPO_ROOT / "policies").policies


def _screen(config: ScreeningConfig) -> StreamScreen:
    async def screen(text: str) -> Any:
        return await shared_screener().screen(text, Stage.OUTPUT, config, tenant="t")

    return StreamScreen(screen)


# Secrets redacted, not blocked, on output: what a stream can show of them is then visible.
REDACTING = ScreeningConfig.model_validate(
    {
        "output": {
            "detectors": ["pii", "secrets"],
            "detector_actions": {"pii": "redact", "secrets": "redact"},
        }
    }
)


def _released(pieces: list[str], policy: str | None = None) -> tuple[list[str], StreamScreen]:
    stream = _screen(POLICIES[policy].policy.screening if policy else REDACTING)

    async def feed_all() -> list[str]:
        out = [await stream.feed(piece) for piece in pieces]
        return [*out, await stream.finish()]

    return asyncio.run(feed_all()), stream


def test_when_a_secret_comes_in_two_writes_then_it_is_redacted_whole() -> None:
    out, _ = _released(["key: " + AWS_KEY[:8], AWS_KEY[8:] + "\n", "done\n"])
    assert out[0] == ""  # half a key is held back, not released
    assert "".join(out) == "key: <AWS_ACCESS_KEY>\ndone\n"


def test_when_an_email_is_split_across_a_pause_then_it_is_redacted() -> None:
    out, _ = _released(["mail bob@exa", "mple.com now\n"])
    assert "".join(out) == "mail <EMAIL_ADDRESS> now\n"


def test_when_a_clean_line_arrives_then_it_goes_out_at_once() -> None:
    out, _ = _released(["hello\n", "partial"])
    assert out[:2] == ["hello\n", ""] and out[2] == "partial"


def test_when_a_line_never_ends_then_all_but_its_tail_goes_out() -> None:
    text = "x" * (HOLD * 4)
    out, _ = _released([text])
    assert out[0] == "x" * (HOLD * 3) and "".join(out) == text


def test_when_a_private_key_block_is_open_then_it_is_held_until_its_end() -> None:
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1234567890abcdef\n"
    out, _ = _released(["start\n", pem, "-----END RSA PRIVATE KEY-----\n", "after\n"])
    assert out[0] == "start\n" and out[1] == ""
    assert "MIIEpAIBAAKCAQEA" not in "".join(out)
    assert "".join(out) == "start\n<PRIVATE_KEY>\nafter\n"


def test_when_screening_blocks_then_nothing_more_goes_out() -> None:
    out, stream = _released(["ok\n", f"{AWS_KEY}\n", "more\n"], policy="strict")
    assert out[0] == "ok\n" and "".join(out[1:]) == ""
    assert stream.blocked is not None


def _events(response: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines()]


def _printing(text: str) -> FakeBackend:
    return FakeBackend(lambda _s: ExecutionResult(status=Status.OK, exit_code=0, stdout=text))


def _stream(service: InProc, body: dict[str, Any]) -> Any:
    return service.request(
        "POST", "/execute", json=body, headers={"Accept": "application/x-ndjson"}
    )


def test_when_execute_is_streamed_then_events_end_with_the_usual_answer(tmp_path: Path) -> None:
    with inproc(tmp_path / "state", _printing("a line\nmail bob@example.com\n")) as service:
        response = _stream(service, {"code": "print(1)"})
        records = [r for r in service.records() if r.request_id]
    assert response.headers["content-type"].startswith("application/x-ndjson")
    events = _events(response)
    assert [e["type"] for e in events] == ["stdout", "end"]
    assert events[0]["text"] == "a line\nmail <EMAIL_ADDRESS>\n"
    assert events[-1]["response"]["stdout"] == "a line\nmail <EMAIL_ADDRESS>\n"
    assert [(r.action, r.status) for r in records] == [("execute", "ok")]


def test_when_streamed_output_is_blocked_then_an_error_event_ends_it(tmp_path: Path) -> None:
    with inproc(tmp_path / "state", _printing(f"{AWS_KEY}\n")) as service:
        response = _stream(service, {"code": "print(1)", "policy": "strict"})
        records = [r for r in service.records() if r.request_id]
    events = _events(response)
    assert [e["type"] for e in events] == ["error"]
    assert events[0]["error"]["type"] == "output_blocked"
    assert events[0]["response"]["output_withheld"] is True
    assert AWS_KEY not in response.text
    assert [r.action for r in records] == ["execute"]


def test_when_refused_after_the_stream_started_then_error_event_and_one_record(
    tmp_path: Path,
) -> None:
    release = threading.Event()

    def slow(_spec: ExecutionSpec) -> ExecutionResult:
        release.wait(5)  # holds the only slot (the fake runs on the event loop's thread)
        return ExecutionResult(status=Status.OK, exit_code=0)

    state = tmp_path / "state"
    with inproc(state, FakeBackend(slow), max_concurrency=1, queue_timeout_s=0.2) as service:
        first = threading.Thread(
            target=service.request, args=("POST", "/execute"), kwargs={"json": {"code": "1"}}
        )
        first.start()
        with inproc(state, max_concurrency=1, queue_timeout_s=0.2) as other:
            threading.Event().wait(0.2)
            response = _stream(other, {"code": "2"})
            refused = [r for r in other.records() if r.status == "429"]
        release.set()
        first.join()
    assert response.status_code == 200
    (event,) = _events(response)
    assert event["type"] == "error" and event["error"]["type"] == "busy"
    assert [r.action for r in refused] == ["rate_limited"]


@pytest.fixture
def session_service(tmp_path: Path) -> Iterator[InProc]:
    backend = FakeBackend(
        session_answer=lambda code: ExecutionResult(status=Status.OK, exit_code=0, stdout="42\n")
    )
    with inproc(tmp_path / "state", backend) as running:
        yield running


def test_when_a_session_execution_is_streamed_then_it_ends_with_its_count(
    session_service: InProc,
) -> None:
    session_id = session_service.request("POST", "/sessions", json={}).json()["session_id"]
    response = session_service.request(
        "POST",
        f"/sessions/{session_id}/execute",
        json={"code": "print(x)"},
        headers={"Accept": "application/x-ndjson"},
    )
    events = _events(response)
    assert [e["type"] for e in events] == ["stdout", "end"]
    assert events[-1]["response"]["execution_count"] == 1
