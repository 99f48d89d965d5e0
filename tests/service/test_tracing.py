"""Tracing (issue 17): the spans of one `/execute` reach a real OTLP/HTTP receiver the test runs
on 127.0.0.1 (decoding the protobuf export), under the caller's trace id and parent span; the
app runs in process on the scripted backend with real screening and a real audit log."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from sandgate.tracing import add_trace_ids, span
from tests.helpers import wait_for
from tests.inproc import inproc

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
STEPS = {
    "auth",
    "ratelimit",
    "policy.resolve",
    "screen.code",
    "detector.secrets",
    "sandbox.queue_wait",
    "sandbox.run",
    "budget.charge",
    "screen.output",
    "audit.commit",
}


class Receiver:
    """An OTLP/HTTP trace receiver: every span of every export, with the paths posted to."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.paths: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
                body = self.rfile.read(int(self.headers["Content-Length"]))
                export = ExportTraceServiceRequest.FromString(body)
                received.paths.append(self.path)
                for resource in export.resource_spans:
                    for scope in resource.scope_spans:
                        received.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def names(self, trace_id: str) -> set[str]:
        return {s.name for s in self.spans if s.trace_id.hex() == trace_id}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()
    running.server.server_close()


def test_when_a_caller_sends_traceparent_then_every_step_arrives_under_its_trace(
    tmp_path: Path, receiver: Receiver
) -> None:
    with inproc(tmp_path / "state", otlp_endpoint=receiver.url) as service:
        assert service.services.tracing.exporting
        answer = service.request(
            "POST",
            "/execute",
            json={"code": "print(1)"},
            headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"},
        )
        assert answer.status_code == 200
        service.services.tracing.flush()
        wait_for(lambda: STEPS <= receiver.names(TRACE_ID), "every step's span", 10)
    ours = [s for s in receiver.spans if s.trace_id.hex() == TRACE_ID]
    (server,) = [s for s in ours if s.kind == Span.SPAN_KIND_SERVER]
    assert server.name == "POST /execute" and server.parent_span_id.hex() == PARENT_ID
    by_id = {s.span_id: s for s in ours}

    def under_server(step: Span) -> bool:
        while step.parent_span_id in by_id:
            step = by_id[step.parent_span_id]
        return step.span_id == server.span_id

    assert all(under_server(s) for s in ours)
    stages = {s.span_id for s in ours if s.name in ("screen.code", "screen.output")}
    detectors = [s for s in ours if s.name.startswith("detector.")]
    assert detectors and all(s.parent_span_id in stages for s in detectors)
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}


def test_when_no_endpoint_is_set_then_nothing_is_exported(tmp_path: Path) -> None:
    with inproc(tmp_path / "state") as service:
        assert not service.services.tracing.exporting
        assert service.request("POST", "/screen", json={"text": "x", "stage": "input"}).is_success


def test_when_a_line_is_logged_inside_a_span_then_it_names_the_trace_and_span() -> None:
    with span("step") as current:
        event = add_trace_ids(None, "info", {})
    context = current.get_span_context()
    assert event == {
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }
    assert add_trace_ids(None, "info", {}) == {}
