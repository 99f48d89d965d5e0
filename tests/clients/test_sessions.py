"""Sessions through the SDK and the CLI, written against DESIGN's contract."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from sandgate_client import (
    AsyncSandgate,
    Sandgate,
    Session,
    SessionEnded,
    SessionInfo,
    SessionNotFound,
)

from tests.helpers import LiveServer

pytestmark = pytest.mark.sandbox
CLI = str(Path(sys.executable).parent / "sandgate-client")


def test_when_a_session_runs_twice_then_variables_and_files_are_kept(sandgate: Sandgate) -> None:
    with sandgate.sessions.create(idle_timeout_s=60) as session:
        first = session.run("x = 20\nopen('kept.txt', 'w').write('still here')")
        second = session.run("print(x + 22, open('kept.txt').read())")
    assert first.ok and second.stdout == "42 still here\n"
    assert (first.execution_count, second.execution_count) == (1, 2)


def test_when_files_are_written_then_the_code_sees_them_and_they_read_back(
    sandgate: Sandgate,
) -> None:
    data = bytes(range(256))
    with sandgate.sessions.create() as session:
        info = session.files.write("in/data.bin", data)
        assert (info.size, info.sha256) == (256, hashlib.sha256(data).hexdigest())
        session.run("open('out.txt', 'w').write(open('in/data.bin', 'rb').read()[:4].hex())")
        assert session.files.read("out.txt") == b"00010203"
        assert session.files.read("in/data.bin") == data


def test_when_the_body_raises_then_the_session_is_deleted_anyway(sandgate: Sandgate) -> None:
    with pytest.raises(RuntimeError, match="agent bug"), sandgate.sessions.create() as session:
        kept = session.id
        raise RuntimeError("agent bug")
    assert kept not in {info.session_id for info in sandgate.sessions.list()}
    with pytest.raises(SessionEnded) as caught:
        Session(sandgate, SessionInfo(session_id=kept)).run("print(1)")
    assert caught.value.reason == "deleted"


def test_when_a_session_is_listed_and_fetched_then_it_is_the_callers(sandgate: Sandgate) -> None:
    with sandgate.sessions.create(ttl_s=120) as session:
        assert session.id in {info.session_id for info in sandgate.sessions.list()}
        again = sandgate.sessions.get(session.id)
        assert again.id == session.id and again.info.expires_at is not None


def test_when_the_id_is_unknown_or_another_tenant_s_then_session_not_found(
    sandgate: Sandgate, server: LiveServer
) -> None:
    with pytest.raises(SessionNotFound):
        sandgate.sessions.get("no-such-session")
    other = server.new_key("other-tenant", tenant="elsewhere")
    with sandgate.sessions.create() as mine, Sandgate(server.url, other) as stranger:
        with pytest.raises(SessionNotFound):
            stranger.sessions.get(mine.id)


def test_when_the_async_client_uses_a_session_then_it_is_deleted_on_exit(
    server: LiveServer,
) -> None:
    async def scenario() -> tuple[str, bytes, list[str]]:
        async with AsyncSandgate(server.url, server.key) as client:
            async with client.sessions.create() as session:
                await session.run("y = 'async'")
                await session.files.write("a.txt", "text")
                ran = await session.run("print(y, open('a.txt').read())")
                read = await session.files.read("a.txt")
            left = [info.session_id for info in await client.sessions.list()]
            assert session.id not in left
            return ran.stdout, read, left

    stdout, read, _left = asyncio.run(scenario())
    assert (stdout, read) == ("async text\n", b"text")


def test_when_the_cli_drives_a_session_then_each_subcommand_works(
    server: LiveServer, tmp_path: Path
) -> None:
    env = {"SANDGATE_URL": server.url, "SANDGATE_API_KEY": server.key, "PATH": "/usr/bin:/bin"}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "session", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )

    session_id = cli("create").stdout.strip()
    assert session_id and session_id in cli("list").stdout
    (tmp_path / "n.txt").write_text("21")
    assert cli("upload", session_id, str(tmp_path / "n.txt")).returncode == 0
    ran = cli("run", session_id, "-", stdin="print(int(open('n.txt').read()) * 2)")
    assert (ran.returncode, ran.stdout) == (0, "42\n")
    assert cli("download", session_id, "n.txt").stdout == "21"
    assert cli("close", session_id).returncode == 0
    gone = cli("run", session_id, "-", stdin="print(1)")
    assert gone.returncode == 125 and "session_ended" in gone.stderr
