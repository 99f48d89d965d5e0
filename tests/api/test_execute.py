"""`POST /execute` over real HTTP against the real service and real gVisor sandboxes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import LiveServer, start_server

pytestmark = pytest.mark.sandbox


def execute(live: LiveServer, body: Any, **kwargs: Any) -> httpx.Response:
    with live.client() as client:
        return client.post("/execute", json=body, **kwargs)


def test_when_code_runs_then_ok_with_output_and_ids(server: LiveServer) -> None:
    response = execute(server, {"code": "print(6 * 7)"}, headers={"X-Request-ID": "req-abc.1"})
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["exit_code"], body["stdout"]) == ("ok", 0, "42\n")
    assert body["request_id"] == "req-abc.1" == response.headers["x-request-id"]
    assert len(body["execution_id"]) == 32
    for field in (
        "stderr",
        "stdout_truncated",
        "stderr_truncated",
        "wall_ms",
        "cpu_ms",
        "peak_memory_bytes",
        "egress",
        "screening",
    ):
        assert field in body


def test_when_no_request_id_sent_then_one_is_generated_and_logged(server: LiveServer) -> None:
    response = execute(server, {"code": "print(1)"})
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    assert any(line.get("request_id") == request_id for line in server.events())


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"code": "import sys; sys.exit(7)"}, "error"),
        ({"code": "while True: pass", "timeout_s": 1}, "timeout"),
        ({"code": "b = bytearray(1 << 30)"}, "memory_limit"),
        # With the default limits memory may run out before the process limit is reached.
        ({"code": "import os\nwhile True: os.fork()"}, "pids_limit|memory_limit"),
        ({"code": "while True: print('x' * 10000)"}, "output_limit"),
    ],
    ids=["exit-code", "endless-loop", "memory-bomb", "fork-bomb", "output-flood"],
)
def test_when_code_is_hostile_then_clean_status(
    server: LiveServer, body: dict[str, Any], status: str
) -> None:
    response = execute(server, body)
    assert response.status_code == 200
    assert response.json()["status"] in status.split("|")


def test_when_stdin_is_a_lone_surrogate_then_422_at_once_and_no_sandbox_waits(
    server: LiveServer,
) -> None:
    started = time.monotonic()
    with server.client() as client:
        response = client.post(
            "/execute",
            content=b'{"code": "import sys; sys.stdin.read()", "stdin": "\\ud800"}',
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 422 and "stdin" in response.json()["error"]["message"]
    assert time.monotonic() - started < 5  # it used to hang until the wall clock
    _assert_never_ran(server, response.headers["x-request-id"])


def test_when_no_stdin_is_given_then_the_program_reads_end_of_file(server: LiveServer) -> None:
    body = execute(server, {"code": "import sys; print(repr(sys.stdin.read()))"}).json()
    assert (body["status"], body["stdout"]) == ("ok", "''\n")


def test_when_stdin_and_files_given_then_program_sees_them(server: LiveServer) -> None:
    body = {
        "code": "import sys, lib; print(lib.f(sys.stdin.read()))",
        "stdin": "h\u00e9llo",
        "files": {"lib.py": "def f(s): return s.upper()"},
    }
    assert execute(server, body).json()["stdout"] == "H\u00c9LLO\n"


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"code": ""}, "code"),
        ({"code": "   \n"}, "code"),
        ({}, "code"),
        ({"code": "print(1)", "language": "cobol"}, "language"),
        ({"code": "print(1)", "timeout_s": -1}, "timeout_s"),
        ({"code": "print(1)", "timeout_s": 0}, "timeout_s"),
        ({"code": "print(1)", "timeout_s": 1e9}, "timeout_s"),
        ({"code": "print(1)", "timeout_s": "soon"}, "timeout_s"),
        ({"code": "print(1)", "files": {"../escape.py": "x"}}, "files"),
        ({"code": "print(1)", "files": {"/etc/passwd": "x"}}, "files"),
        ({"code": "print(1)", "files": {"a/../../b": "x"}}, "files"),
        ({"code": "print(1)", "files": {"a": "x", "a/b": "y"}}, "files"),
        ({"code": "print(1)", "files": {"": "x"}}, "files"),
        ({"code": "print(1)", "files": {f"f{i}": "" for i in range(65)}}, "files"),
        ({"code": "print(1)", "timeout": 5}, "timeout"),
        ({"code": 42}, "code"),
        ([1, 2], "body"),
    ],
)
def test_when_input_is_bad_then_422_names_the_field_and_nothing_runs(
    server: LiveServer, body: Any, where: str
) -> None:
    response = execute(server, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert where in error["message"]
    assert "Traceback" not in response.text
    _assert_never_ran(server, response.headers["x-request-id"])


def test_when_json_is_malformed_then_422(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post(
            "/execute", content=b'{"code": ', headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422
    assert "json" in response.json()["error"]["message"].lower()


def test_when_body_is_not_json_then_415(server: LiveServer) -> None:
    with server.client() as client:
        response = client.post("/execute", data={"code": "print(1)"})
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]["message"]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_when_body_is_too_large_then_413(server: LiveServer, chunked: bool) -> None:
    payload = json.dumps({"code": "#" + "x" * (3 << 20)}).encode()
    content: Any = iter([payload[i : i + 65536] for i in range(0, len(payload), 65536)])
    with server.client() as client:
        response = client.post(
            "/execute",
            content=content if chunked else payload,
            headers={"Content-Type": "application/json"},
        )
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "payload_too_large"
    _assert_never_ran(server, response.headers["x-request-id"])


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sg_wrong"},
        {"Authorization": "Basic YTpi"},
        {"Authorization": f"Bearer {ADMIN_KEY}x"},
    ],
    ids=["missing", "wrong", "basic", "near-miss"],
)
def test_when_key_is_missing_or_wrong_then_401(server: LiveServer, headers: dict[str, str]) -> None:
    response = httpx.post(f"{server.url}/execute", json={"code": "print(1)"}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["type"] == "unauthorized"
    _assert_never_ran(server, response.headers["x-request-id"])


def test_when_health_and_ready_asked_then_no_key_needed(server: LiveServer) -> None:
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) >= {"runsc", "image", "cgroups", "state_writable"}


def test_when_key_created_by_cli_then_it_works_and_is_stored_hashed(server: LiveServer) -> None:

    secret = server.new_key("ci-agent")
    assert secret.startswith("sg_") and len(secret) > 40
    with server.client(key=secret) as client:
        assert client.post("/execute", json={"code": "print(1)"}).json()["status"] == "ok"
    raw = (server.state_dir / "keys.db").read_bytes()
    assert secret.encode() not in raw and ADMIN_KEY.encode() not in raw
    assert secret not in server.log() and ADMIN_KEY not in server.log()


def _assert_never_ran(live: LiveServer, request_id: str) -> None:
    for line in live.log().splitlines():
        if request_id in line:
            assert "execute.start" not in line


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory: pytest.TempPathFactory, images: Any) -> Iterator[LiveServer]:
    """A service that may run two sandboxes at once and makes callers wait at most 1 s; no
    pool, so that every sandbox on the host is one running an execution (the pool's own
    share of the cap is in tests/sandbox/test_pool.py)."""
    state = make_state_dir(tmp_path_factory.mktemp("capped-state"))
    env = {
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_MAX_CONCURRENCY": "2",
        "SANDGATE_QUEUE_TIMEOUT_S": "1",
        "SANDGATE_POOL_SIZE": "0",
    }
    with start_server(state, env) as live:
        yield live


def test_when_load_exceeds_the_cap_then_429_and_never_more_sandboxes(
    capped_server: LiveServer,
) -> None:
    running_peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal running_peak
        marker = f"--root={Path(capped_server.state_dir).resolve() / 'runsc'}"
        while not stop.is_set():
            # Distinct bundles of gVisor kernels (`runsc-sandbox ... boot ... --bundle=B`).
            running = {
                arg
                for p in psutil.process_iter(["cmdline"])
                if marker in (cmdline := p.info["cmdline"] or []) and "boot" in cmdline
                for arg in cmdline
                if arg.startswith("--bundle=")
            }
            running_peak = max(running_peak, len(running))
            time.sleep(0.02)

    results: list[httpx.Response] = []

    def call() -> None:
        results.append(execute(capped_server, {"code": "import time; time.sleep(3)"}))

    watcher = threading.Thread(target=watch)
    watcher.start()
    callers = [threading.Thread(target=call) for _ in range(6)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    stop.set()
    watcher.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [200, 200, 429, 429, 429, 429]
    refused = next(r for r in results if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["type"] == "busy"
    assert 1 <= running_peak <= 2


def test_when_metrics_scraped_then_executions_are_counted_and_a_key_is_needed(
    server: LiveServer,
) -> None:
    assert httpx.get(f"{server.url}/metrics").status_code == 401
    execute(server, {"code": "import sys; sys.exit(3)"})
    with server.client() as client:
        text = client.get("/metrics").text
    counted = [
        line
        for line in text.splitlines()
        if line.startswith('sandgate_executions_total{status="error"}')
    ]
    assert counted and float(counted[0].split()[-1]) >= 1
