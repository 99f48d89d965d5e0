"""What an operator sees: one access line per request, and metrics summed over all workers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import LiveServer, start_server, wait_for

pytestmark = pytest.mark.live

AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
_ALLOWED = re.compile(r'^sandgate_screenings_total\{stage="input",verdict="allow"\} (\S+)$', re.M)


def _request_lines(live: LiveServer, route: str | None = None) -> list[dict[str, Any]]:
    return [line for line in live.events("request") if route in (None, line["route"])]


def _workers_that_screened(live: LiveServer) -> set[int]:
    return {line["pid"] for line in _request_lines(live, "/screen")}


def _allowed_screenings(live: LiveServer) -> float:
    """The allow count of one scrape, on a new connection (so any worker may answer it)."""
    text = httpx.get(f"{live.url}/metrics", headers={"Authorization": f"Bearer {live.key}"}).text
    found = _ALLOWED.search(text)
    return float(found.group(1)) if found else 0.0


def test_when_a_request_ends_then_one_access_line_names_its_route_never_its_raw_path(
    server: LiveServer,
) -> None:
    with server.client() as client:
        screened = client.post(
            "/screen", json={"text": "hello", "stage": "input"}, headers={"X-Request-ID": "obs-1"}
        )
        missing = client.get(f"/no/such/{AWS_KEY}", headers={"X-Request-ID": "obs-2"})
    assert (screened.status_code, missing.status_code) == (200, 404)
    # The line is written just after the answer is sent.
    wait_for(
        lambda: {"obs-1", "obs-2"} <= {line["request_id"] for line in _request_lines(server)},
        "access lines for obs-1 and obs-2",
        10,
    )
    by_id = {line["request_id"]: line for line in _request_lines(server)}
    assert by_id["obs-1"]["route"] == "/screen" and by_id["obs-1"]["status"] == 200
    assert by_id["obs-1"]["method"] == "POST" and by_id["obs-1"]["duration_ms"] > 0
    assert by_id["obs-1"]["pid"] == server.process.pid
    assert by_id["obs-2"]["route"] == "(no route)" and by_id["obs-2"]["status"] == 404
    assert AWS_KEY not in server.log()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return make_state_dir(tmp_path / "state")


def test_when_two_workers_serve_then_every_scrape_counts_the_requests_of_both(
    state: Path,
) -> None:
    env = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_WORKERS": "2"}
    with start_server(state, env) as live:
        sent = 0
        while sent < 300 and len(_workers_that_screened(live)) < 2:
            # A new connection each time: the kernel hands it to whichever worker accepts.
            body = {"text": "The report is due on Friday.", "stage": "input"}
            headers = {"Authorization": f"Bearer {live.key}"}
            response = httpx.post(f"{live.url}/screen", json=body, headers=headers)
            assert response.json()["verdict"] == "allow"
            sent += 1
        assert len(_workers_that_screened(live)) == 2, f"one worker took all {sent} requests"
        assert [_allowed_screenings(live) for _ in range(8)] == [float(sent)] * 8
    with start_server(state, env) as live:  # a restart starts counting from zero
        assert _allowed_screenings(live) == 0.0
