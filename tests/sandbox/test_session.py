"""Sessions on runsc, in real gVisor: state across executions, per-execution stdin, exit codes
and exceptions that end an execution but not the session, the per-execution caps (wall clock,
CPU, output) that interrupt and keep the state, the life-long ones (processes, disk) and what
ends a session, files in and out of /work, and that nothing of a session outlives it."""

from __future__ import annotations

import os
import textwrap
import uuid
from collections.abc import Iterator

import pytest

from sandbox.base import ExecutionResult, Limits, SandboxSession, SessionEnded, SessionSpec, Status
from sandbox.bundle import BundleError
from tests.conftest import make_state_dir
from tests.sandbox.conftest import Backend, make_backend

pytestmark = pytest.mark.sandbox

LIMITS = Limits(timeout_s=5, memory_mb=256, max_processes=32, disk_mb=16)


class Session:
    """A session on the backend's loop, called synchronously."""

    def __init__(self, backend: Backend, limits: Limits = LIMITS) -> None:
        self.backend = backend
        spec = SessionSpec(session_id=uuid.uuid4().hex, limits=limits)
        self.sandbox: SandboxSession = backend.loop.run(backend.backend.start_session(spec))

    def run(self, code: str, **limits: float) -> ExecutionResult:
        caps = LIMITS.model_copy(update=limits)
        return self.backend.loop.run(
            self.sandbox.execute(textwrap.dedent(code), limits=caps, stdin="line one\n")
        )

    def close(self) -> None:
        self.backend.loop.run(self.sandbox.close())


@pytest.fixture
def session(runsc_backend: Backend) -> Iterator[Session]:
    made = Session(runsc_backend)
    yield made
    made.close()
    assert runsc_backend.leftovers() == []


def test_when_executions_follow_then_state_and_count_persist(session: Session) -> None:
    first = session.run("import json\nx = 41")
    second = session.run("x += 1\njson.dumps(x)")
    assert (first.execution_count, second.execution_count) == (1, 2)
    assert second.results[0].data == {"text/plain": "'42'"}


def test_when_code_reads_stdin_then_it_gets_this_executions_own(session: Session) -> None:
    code = "import subprocess, sys\nprint(input())\nprint(subprocess.run(['cat']).returncode)"
    again = "import sys\nprint(repr(sys.stdin.read()))"
    assert session.run(code).stdout == "line one\n0\n"
    assert session.run(again).stdout == "'line one\\n'\n"


@pytest.mark.parametrize(
    ("code", "exit_code", "stderr_end"),
    [
        ("raise SystemExit(4)", 4, ""),
        ("import sys; sys.exit('bye')", 1, "bye\n"),
        ("1 / 0", 1, "ZeroDivisionError: division by zero\n"),
    ],
)
def test_when_an_execution_exits_or_raises_then_only_it_ends(
    session: Session, code: str, exit_code: int, stderr_end: str
) -> None:
    session.run("kept = 'yes'")
    ended = session.run(code)
    assert (ended.status, ended.exit_code) == (Status.ERROR, exit_code)
    assert ended.stderr.endswith(stderr_end) and "runner" not in ended.stderr
    assert session.run("print(kept)").stdout == "yes\n"


def test_when_code_loops_past_its_cpu_time_then_it_is_interrupted_and_state_kept(
    session: Session,
) -> None:
    session.run("x = 7")
    looped = session.run("while True: pass", cpu_s=1, timeout_s=20)
    assert looped.status is Status.TIMEOUT and "CPU-time" in str(looped.detail)
    assert looped.stderr.endswith("KeyboardInterrupt\n")
    after = session.run("print(x)")
    assert after.stdout == "7\n" and after.cpu_ms < 500  # CPU is counted per execution


def test_when_code_floods_its_output_then_output_limit_and_state_kept(session: Session) -> None:
    session.run("x = 7")
    flooded = session.run("while True: print('y' * 1000)", output_bytes=100_000)
    assert flooded.status is Status.OUTPUT_LIMIT and flooded.stdout_truncated
    assert len(flooded.stdout) <= 100_000
    assert session.run("print(x)").stdout == "7\n"


def test_when_code_ignores_the_interrupt_then_the_session_ends_with_timeout(
    session: Session,
) -> None:
    code = """
        import time
        while True:
            try:
                time.sleep(10)
            except KeyboardInterrupt:
                pass
    """
    stuck = session.run(code, timeout_s=1)
    assert stuck.status is Status.TIMEOUT
    assert session.sandbox.ended == "timeout"
    with pytest.raises(SessionEnded, match="timeout"):
        session.run("1")


def test_when_code_fork_bombs_then_the_session_ends_at_its_limit(session: Session) -> None:
    bombed = session.run("import os\nwhile True: os.fork()")
    assert bombed.status in (Status.PIDS_LIMIT, Status.MEMORY_LIMIT)
    assert session.sandbox.ended == bombed.status.value


def test_when_code_fills_the_disk_then_it_fails_and_the_session_lives(session: Session) -> None:
    filled = session.run("open('big', 'wb').write(b'0' * (32 << 20))")
    assert filled.status is Status.ERROR and "No space left" in filled.stderr
    assert session.run("import os; os.remove('big'); print('ok')").stdout == "ok\n"


def test_when_files_go_in_and_out_then_byte_for_byte_and_only_inside_work(
    session: Session,
) -> None:
    loop, sandbox = session.backend.loop, session.sandbox
    blob = os.urandom(300_000)
    loop.run(sandbox.write_file("in/data.bin", blob))
    session.run("open('out.bin', 'wb').write(open('in/data.bin', 'rb').read()[::-1])")
    assert loop.run(sandbox.read_file("out.bin", 1 << 20)) == blob[::-1]
    with pytest.raises(ValueError, match="larger"):
        loop.run(sandbox.read_file("out.bin", 1000))
    session.run("import os; os.symlink('/etc/passwd', 'link')")
    for missing in ("link", "nothing", "in"):
        with pytest.raises(FileNotFoundError):
            loop.run(sandbox.read_file(missing, 1 << 20))
    for bad in ("../etc/passwd", "/etc/passwd", "a/../../b"):
        with pytest.raises(BundleError):
            loop.run(sandbox.write_file(bad, b"x"))


def test_when_an_execution_is_followed_then_its_output_streams_without_records(
    session: Session,
) -> None:
    chunks: list[tuple[str, bytes]] = []

    async def sink(stream: str, data: bytes) -> None:
        chunks.append((stream, data))

    code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\n'value'"
    result = session.backend.loop.run(session.sandbox.execute(code, limits=LIMITS, on_output=sink))
    assert b"".join(d for s, d in chunks if s == "stdout") == b"out\n"
    assert b"".join(d for s, d in chunks if s == "stderr") == b"err\n"
    assert result.results[0].data == {"text/plain": "'value'"}


PROCESSES = "[open(f'/proc/{p}/cmdline').read() for p in os.listdir('/proc') if p.isdigit()]"


def test_when_two_sessions_run_then_neither_sees_the_others_state(runsc_backend: Backend) -> None:
    a, b = Session(runsc_backend), Session(runsc_backend)
    try:
        a.run("import os, subprocess\nsecret = 1\nopen('mine', 'w').write('a')\n"
              "p = subprocess.Popen(['sleep', '60'])")  # fmt: skip
        seen = b.run(
            f"import os\nprint('secret' in globals(), os.path.exists('mine'))\n{PROCESSES}"
        )
        assert seen.stdout == "False False\n"
        assert "sleep" not in str(seen.results[0].data["text/plain"])
        assert "sleep" in str(a.run(PROCESSES).results[0].data["text/plain"])  # it lives on
    finally:
        a.close()
        b.close()
    assert runsc_backend.leftovers() == []


def test_when_the_backend_closes_then_its_live_sessions_go_too(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    made = make_backend("runsc", make_state_dir(tmp_path_factory.mktemp("sessions-close")))
    live = Session(made)
    live.run("x = 1")
    assert made.leftovers() == []  # a live session's sandbox is there on purpose
    made.close()
    assert made.backend.leftovers() == []
    assert live.sandbox.ended == "deleted"
