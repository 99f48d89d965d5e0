"""Sessions over real HTTP in real gVisor (issue 14): state kept between calls, files in and out
byte for byte, isolation between tenants, idle and lifetime limits, a memory bomb that ends only
its own session, a restart that ends every session cleanly, streaming, and hostile code with
the documented outcome. The API's logic is tested in process in `tests/service/test_sessions.py`."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import LiveServer, leftovers_of, start_server, wait_for

pytestmark = pytest.mark.sandbox


def _create(live: LiveServer, key: str | None = None, **body: Any) -> str:
    with live.client(key=key) as client:
        response = client.post("/sessions", json=body)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["session_id"]
    return session_id


def _run(live: LiveServer, session_id: str, code: str, key: str | None = None, **body: Any) -> Any:
    with live.client(key=key) as client:
        response = client.post(f"/sessions/{session_id}/execute", json={"code": code, **body})
    assert response.status_code == 200, response.text
    return response.json()


def _end(live: LiveServer, session_id: str, key: str | None = None) -> None:
    with live.client(key=key) as client:
        client.delete(f"/sessions/{session_id}")


@pytest.fixture
def session(server: LiveServer) -> Iterator[str]:
    session_id = _create(server)
    yield session_id
    _end(server, session_id)


def test_when_a_variable_is_set_then_the_next_execution_sees_it(
    server: LiveServer, session: str
) -> None:
    first = _run(server, session, "x = 41")
    second = _run(server, session, "print(x + 1)")
    assert (first["status"], first["execution_count"]) == ("ok", 1)
    assert (second["stdout"], second["execution_count"]) == ("42\n", 2)


def test_when_a_module_is_imported_then_it_stays_imported_and_the_last_value_is_a_result(
    server: LiveServer, session: str
) -> None:
    _run(server, session, "import statistics")
    answer = _run(server, session, "statistics.mean([1, 2, 3, 4])")
    assert answer["results"][0]["kind"] == "execute_result"
    assert answer["results"][0]["data"]["text/plain"] == "2.5"


def test_when_code_writes_a_file_then_it_downloads_byte_for_byte(
    server: LiveServer, session: str
) -> None:
    _run(server, session, "open('out.bin', 'wb').write(bytes(range(256)) * 3)")
    with server.client() as client:
        response = client.get(f"/sessions/{session}/files/out.bin")
    assert response.status_code == 200 and response.content == bytes(range(256)) * 3


def test_when_a_binary_file_is_uploaded_then_code_reads_it_byte_for_byte(
    server: LiveServer, session: str
) -> None:
    blob = os.urandom(5000)
    with server.client() as client:
        put = client.put(f"/sessions/{session}/files/data/in.bin", content=blob)
    assert put.status_code == 201, put.text
    answer = _run(
        server,
        session,
        "import hashlib; print(hashlib.sha256(open('data/in.bin', 'rb').read()).hexdigest())",
    )
    assert answer["stdout"].strip() == put.json()["sha256"]


def test_when_two_tenants_hold_sessions_then_neither_sees_the_other(server: LiveServer) -> None:
    alice = server.new_key("alice", tenant="alice")
    bob = server.new_key("bob", tenant="bob")
    a, b = _create(server, key=alice), _create(server, key=bob)
    try:
        _run(server, a, "secret = 'alice-only'; open('mine.txt', 'w').write('alice')", key=alice)
        seen = _run(
            server,
            b,
            "import os\n"
            "print('secret' in globals(), os.path.exists('mine.txt'))\n"
            "print(sorted(p for p in os.listdir('/proc') if p.isdigit()))",
            key=bob,
        )
        assert seen["stdout"].splitlines()[0] == "False False"
        with server.client(key=bob) as client:
            assert client.get(f"/sessions/{a}").status_code == 404
            assert client.get(f"/sessions/{a}/files/mine.txt").status_code == 404
            assert client.post(f"/sessions/{a}/execute", json={"code": "1"}).status_code == 404
    finally:
        _end(server, a, key=alice)
        _end(server, b, key=bob)


def test_when_idle_past_its_timeout_then_the_session_ends_with_reason_idle(
    server: LiveServer,
) -> None:
    session_id = _create(server, idle_timeout_s=1)
    with server.client() as client:
        gone = wait_for(
            lambda: (r := client.get(f"/sessions/{session_id}")).status_code == 410 and r,
            "the idle session to end",
        )
    assert gone.json()["error"]["details"] == [{"reason": "idle"}]


def test_when_past_its_lifetime_then_the_session_ends_with_reason_ttl(server: LiveServer) -> None:
    session_id = _create(server, ttl_s=2)
    _run(server, session_id, "x = 1")
    with server.client() as client:
        gone = wait_for(
            lambda: (r := client.get(f"/sessions/{session_id}")).status_code == 410 and r,
            "the session to expire",
        )
    assert gone.json()["error"]["details"] == [{"reason": "ttl"}]


def test_when_a_session_allocates_past_its_memory_then_only_it_ends(server: LiveServer) -> None:
    doomed, other = _create(server), _create(server)
    try:
        _run(server, other, "kept = 'still here'")
        answer = _run(server, doomed, "b = bytearray(2 << 30)")
        assert answer["status"] == "memory_limit"
        with server.client() as client:
            gone = client.get(f"/sessions/{doomed}")
        assert gone.status_code == 410
        assert gone.json()["error"]["details"] == [{"reason": "memory_limit"}]
        assert _run(server, other, "print(kept)")["stdout"] == "still here\n"
    finally:
        _end(server, other)


def test_when_code_loops_forever_then_it_is_interrupted_and_the_session_keeps_its_state(
    server: LiveServer, session: str
) -> None:
    _run(server, session, "x = 7")
    answer = _run(server, session, "while True: pass", timeout_s=2)
    assert answer["status"] == "timeout"
    assert "KeyboardInterrupt" in answer["stderr"]
    assert _run(server, session, "print(x)")["stdout"] == "7\n"


def test_when_code_fork_bombs_then_pids_limit_and_the_session_ends(server: LiveServer) -> None:
    session_id = _create(server)
    answer = _run(server, session_id, "import os\nwhile True: os.fork()")
    assert answer["status"] in ("pids_limit", "memory_limit")
    with server.client() as client:
        assert client.get(f"/sessions/{session_id}").status_code == 410


def test_when_a_session_execution_streams_then_its_first_line_comes_before_the_end(
    server: LiveServer, session: str
) -> None:
    code = "import time\nprint('first')\ntime.sleep(2)\nprint('second')"
    arrivals = []
    with (
        server.client() as client,
        client.stream(
            "POST",
            f"/sessions/{session}/execute",
            json={"code": code},
            headers={"Accept": "application/x-ndjson"},
        ) as response,
    ):
        for line in response.iter_lines():
            if line:
                arrivals.append((time.monotonic(), json.loads(line)))
    kinds = [event["type"] for _, event in arrivals]
    assert kinds == ["stdout", "stdout", "end"], kinds
    assert arrivals[-1][0] - arrivals[0][0] >= 1.5
    assert arrivals[-1][1]["response"]["execution_count"] == 1


def test_when_the_service_is_killed_then_the_next_start_ends_its_sessions_cleanly(
    tmp_path_factory: pytest.TempPathFactory, images: Any
) -> None:
    state = make_state_dir(tmp_path_factory.mktemp("session-kill"))
    env = {"SANDGATE_API_KEY": ADMIN_KEY}
    with start_server(state, env) as live:
        ids = [_create(live) for _ in range(2)]
        _run(live, ids[0], "x = 1")
        before = set(leftovers_of(state))  # the sessions' sandboxes, and the pool's idle ones
        live.process.send_signal(signal.SIGKILL)
        live.process.wait()
    with start_server(state, env) as again:
        with httpx.Client(
            base_url=again.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as c:
            answers = [c.get(f"/sessions/{i}") for i in ids]
        assert [a.status_code for a in answers] == [410, 410]
        assert all(a.json()["error"]["details"] == [{"reason": "restart"}] for a in answers)
        assert len(before) >= 2 * 3  # each session's process, cgroups and bundle at least
        # Nothing of the killed service is left; what the new one holds (its pool) is new.
        assert set(leftovers_of(state)) & before == set()
    assert leftovers_of(state) == []


def test_when_an_upload_finds_the_sessions_disk_full_then_413_and_the_session_lives(
    server: LiveServer, session: str
) -> None:
    filled = _run(server, session, "x = 'kept'\nopen('fill', 'wb').write(b'0' * (62 << 20))")
    assert filled["status"] == "ok", filled["stderr"]  # 62 of the default policy's 64 MiB
    with server.client() as client:
        put = client.put(f"/sessions/{session}/files/more.bin", content=b"\0" * (4 << 20))
    assert put.status_code == 413, put.text
    assert _run(server, session, "print(x)")["stdout"] == "kept\n"


def test_when_a_language_has_no_session_runner_then_501_without_pointing_at_runsc(
    server: LiveServer,
) -> None:
    tooling = server.new_key("tooling-sessions", tenant="tooling")
    with server.client(key=tooling) as client:
        answer = client.post("/sessions", json={"language": "bash"})
    assert answer.status_code == 501, answer.text
    assert answer.json()["error"]["message"] == "the bash runner holds no sessions"
