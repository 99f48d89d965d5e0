"""Unit tests of stream decoding: NDJSON lines to events, and a cut stream detected."""

from __future__ import annotations

import json

import httpx
import pytest
from sandgate_client import EndEvent, OutputEvent, ResultEvent, Sandgate
from sandgate_client.errors import ProtocolError, StreamInterrupted
from sandgate_client.events import Callbacks, EventDecoder, consume, events_of_answer
from sandgate_client.models import ExecuteResult, SessionResult

ANSWER = {"execution_id": "e1", "status": "ok", "exit_code": 0, "stdout": "hi\n", "stderr": ""}
LINES = [
    json.dumps({"type": "stdout", "text": "hi\n"}),
    "",
    json.dumps({"type": "heartbeat"}),
    json.dumps({"type": "result", "kind": "execute_result", "data": {"text/plain": "42"}}),
    json.dumps({"type": "end", "response": {**ANSWER, "execution_count": 3}}),
]


def test_when_lines_are_decoded_then_known_events_come_and_unknown_ones_are_skipped() -> None:
    decoder = EventDecoder(SessionResult)
    events = [e for line in LINES if (e := decoder.decode(line)) is not None]
    assert [e.type for e in events] == ["stdout", "result", "end"]
    assert isinstance(events[1], ResultEvent) and events[1].text == "42"
    assert isinstance(events[2], EndEvent) and events[2].response.execution_count == 3
    assert decoder.finish().execution_count == 3


@pytest.mark.parametrize("line", ["{not json", '{"type": "stdout"}', '{"type": "end"}', "[1]"])
def test_when_a_line_is_unreadable_then_protocol_error(line: str) -> None:
    with pytest.raises(ProtocolError, match="unreadable stream line"):
        EventDecoder(ExecuteResult).decode(line)


def test_when_the_end_event_never_comes_then_stream_interrupted() -> None:
    decoder = EventDecoder(ExecuteResult)
    decoder.decode(LINES[0])
    with pytest.raises(StreamInterrupted):
        decoder.finish()
    with pytest.raises(StreamInterrupted):
        consume(iter([OutputEvent(type="stdout", text="x")]), Callbacks())


def test_when_a_whole_answer_is_read_as_events_then_output_precedes_end() -> None:
    answer = ExecuteResult.model_validate({**ANSWER, "stderr": "oops\n"})
    assert [e.type for e in events_of_answer(answer)] == ["stdout", "stderr", "end"]
    seen: list[str] = []
    assert consume(events_of_answer(answer), Callbacks(on_stderr=seen.append)) is answer
    assert seen == ["oops\n"]


def _client(body: str, content_type: str) -> Sandgate:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept"] == "application/x-ndjson"
        return httpx.Response(200, text=body, headers={"content-type": content_type})

    return Sandgate(
        "http://127.0.0.1:1",
        "sg_k",
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def test_when_the_service_streams_ndjson_then_the_client_yields_each_event() -> None:
    events = list(_client("\n".join(LINES), "application/x-ndjson").stream("print('hi')"))
    assert [e.type for e in events] == ["stdout", "result", "end"]


def test_when_the_service_answers_plain_json_then_the_stream_still_yields_output_and_end() -> None:
    events = list(_client(json.dumps(ANSWER), "application/json").stream("print('hi')"))
    assert [(e.type, getattr(e, "text", None)) for e in events] == [
        ("stdout", "hi\n"),
        ("end", None),
    ]


def test_when_the_stream_is_cut_before_its_end_then_the_client_raises() -> None:
    with pytest.raises(StreamInterrupted):
        list(_client(LINES[0] + "\n", "application/x-ndjson").stream("print('hi')"))
