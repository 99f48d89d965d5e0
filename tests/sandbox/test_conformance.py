"""Every backend against the same hostile and ordinary code, in real gVisor sandboxes.

Each case runs once per backend (`runsc` direct with a sandbox started for the run, `runsc-pool`
in a sandbox the warm pool started ahead, and `docker` with the runsc runtime; see conftest.py):
all are held to one contract, and no case may pass on one and not another.
"""

from __future__ import annotations

import asyncio
import os
import textwrap
import uuid
from typing import Any

import pytest

from sandbox.base import ExecutionResult, ExecutionSpec, Limits, Status
from tests.sandbox.conftest import Backend

pytestmark = pytest.mark.sandbox


def run(backend: Backend, code: str, **kwargs: Any) -> ExecutionResult:
    """Run `code` in a fresh sandbox and check nothing of it is left afterwards."""
    limits = Limits(**kwargs.pop("limits", {}))
    spec = ExecutionSpec(
        execution_id=uuid.uuid4().hex, code=textwrap.dedent(code), limits=limits, **kwargs
    )
    result = backend.run(spec)
    assert backend.leftovers() == []
    return result


def test_when_code_prints_then_ok_with_output_and_measurements(backend: Backend) -> None:
    result = run(backend, "print('hello')")
    assert result.status is Status.OK
    assert (result.exit_code, result.stdout, result.stderr) == (0, "hello\n", "")
    assert result.wall_ms > 0 and result.cpu_ms > 0
    assert 1 << 20 < result.peak_memory_bytes < 256 << 20


@pytest.mark.parametrize("code", [3, 1, 255])
def test_when_code_exits_nonzero_then_error_with_its_code(backend: Backend, code: int) -> None:
    result = run(backend, f"import sys; sys.exit({code})")
    assert (result.status, result.exit_code) == (Status.ERROR, code)


def test_when_stdin_given_then_program_reads_it(backend: Backend) -> None:
    result = run(backend, "import sys; print(sys.stdin.read()[::-1])", stdin="abc\u00e9")
    assert result.stdout == "\u00e9cba\n"


def test_when_files_given_then_they_are_in_work_and_importable(backend: Backend) -> None:
    code = """
        import os, helper
        print(os.getcwd(), helper.VALUE, open('data/in.txt').read())
        open('out.txt', 'w').write('writable')
    """
    result = run(backend, code, files={"helper.py": "VALUE = 42", "data/in.txt": "x\u00fc"})
    assert result.status is Status.OK, result.stderr
    assert result.stdout == "/work 42 x\u00fc\n"


def test_when_output_is_unicode_and_binary_then_both_survive(backend: Backend) -> None:
    code = """
        import sys
        print('\u00e9\U0001f600 \u0915\u094d\u0937')
        sys.stdout.flush()
        sys.stderr.buffer.write(bytes(range(256)))
    """
    result = run(backend, code)
    assert result.stdout == "\u00e9\U0001f600 \u0915\u094d\u0937\n"
    assert result.stdout_base64 is None
    import base64

    assert result.stderr_base64 is not None
    assert base64.b64decode(result.stderr_base64) == bytes(range(256))
    assert "\ufffd" in result.stderr


def test_when_loop_never_ends_then_timeout(backend: Backend) -> None:
    result = run(backend, "while True: pass", limits={"timeout_s": 2, "cpu_s": 30})
    assert result.status is Status.TIMEOUT
    assert "wall-clock" in (result.detail or "")
    assert 2000 <= result.wall_ms < 8000


def test_when_cpu_time_runs_out_then_timeout_before_wall_clock(backend: Backend) -> None:
    code = """
        import threading
        def spin():
            while True: pass
        for _ in range(2): threading.Thread(target=spin, daemon=True).start()
        spin()
    """
    result = run(backend, code, limits={"timeout_s": 20, "cpu_s": 1, "cpus": 2})
    assert result.status is Status.TIMEOUT
    assert "CPU-time" in (result.detail or "")
    assert result.wall_ms < 20000


def test_when_memory_bomb_then_memory_limit(backend: Backend) -> None:
    code = """
        chunks = []
        while True:
            chunks.append(bytearray(16 << 20))
    """
    result = run(backend, code, limits={"memory_mb": 128})
    assert result.status is Status.MEMORY_LIMIT
    assert result.peak_memory_bytes <= (128 << 20) + (1 << 20)  # the kernel overshoots by pages


@pytest.mark.parametrize(("memory_mb", "status"), [(64, Status.MEMORY_LIMIT), (256, Status.OK)])
def test_when_100mb_allocated_then_limit_decides(
    backend: Backend, memory_mb: int, status: Status
) -> None:
    result = run(
        backend, "b = bytearray(100 << 20); print(len(b))", limits={"memory_mb": memory_mb}
    )
    assert result.status is status


@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True: os.fork()",
        # A bomb that shrugs off refused forks and keeps trying.
        "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass",
        "import threading as t, time\nwhile True: t.Thread(target=time.sleep, args=(9,)).start()",
        "import subprocess\nwhile True: subprocess.Popen(['sleep', '9'])",
    ],
    ids=["fork-bomb", "stubborn-fork-bomb", "thread-bomb", "subprocess-bomb"],
)
def test_when_fork_bomb_then_pids_limit_and_host_intact(backend: Backend, code: str) -> None:
    result = run(backend, code, limits={"max_processes": 32, "timeout_s": 10})
    assert result.status is Status.PIDS_LIMIT, (result.status, result.detail)


def test_when_the_process_limit_is_the_smallest_then_plain_code_still_runs(
    backend: Backend,
) -> None:
    result = run(backend, "print('one process')", limits={"max_processes": 4})
    assert (result.status, result.stdout) == (Status.OK, "one process\n")


def test_when_output_floods_then_cut_at_cap_and_killed(backend: Backend) -> None:
    code = "import sys\nwhile True: sys.stdout.write('x' * 65536)"
    result = run(backend, code, limits={"output_bytes": 100_000, "timeout_s": 30})
    assert result.status is Status.OUTPUT_LIMIT
    assert result.stdout_truncated and len(result.stdout) == 100_000
    assert result.wall_ms < 10_000


def test_when_stderr_floods_then_stderr_is_capped_too(backend: Backend) -> None:
    code = "import sys\nwhile True: sys.stderr.write('e' * 4096)"
    result = run(backend, code, limits={"output_bytes": 10_000})
    assert result.status is Status.OUTPUT_LIMIT
    assert result.stderr_truncated and len(result.stderr) == 10_000
    assert not result.stdout_truncated


@pytest.mark.parametrize("path", ["/work/fill", "/tmp/fill"])
def test_when_disk_filled_then_enospc_at_the_cap(backend: Backend, path: str) -> None:
    code = f"""
        import errno
        f = open({path!r}, 'wb')
        written = 0
        try:
            while True:
                f.write(b'x' * (1 << 20)); f.flush(); written += 1
        except OSError as e:
            print(errno.errorcode[e.errno], written)
    """
    result = run(backend, code, limits={"disk_mb": 16, "memory_mb": 256})
    assert result.status is Status.OK, result.stderr
    reason, written = result.stdout.split()
    assert reason == "ENOSPC" and int(written) <= 16


@pytest.mark.parametrize("path", ["/usr/bin/evil", "/etc/passwd", "/sandgate/main.py", "/evil"])
def test_when_writing_outside_work_and_tmp_then_refused(backend: Backend, path: str) -> None:
    code = f"""
        try:
            open({path!r}, 'a').write('x')
            print('WROTE')
        except OSError as e:
            print(type(e).__name__)
    """
    result = run(backend, code)
    assert result.stdout.strip() in ("PermissionError", "OSError"), result.stdout


def test_when_sandbox_looks_at_itself_then_unprivileged_and_bare(backend: Backend) -> None:
    code = """
        import os
        status = dict(l.split(':\\t', 1) for l in open('/proc/self/status').read().splitlines()
                      if ':\\t' in l)
        print(os.getuid(), os.getgid(), status['CapEff'].strip(), status['CapBnd'].strip())
        print(sorted(os.listdir('/sys/class/net')))
    """
    result = run(backend, code)
    ids, nets = result.stdout.splitlines()
    assert ids == "65534 65534 0000000000000000 0000000000000000"
    assert nets == "['lo']"


def test_when_code_reads_its_environment_then_service_env_absent(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SANDGATE_API_KEY", "sg_must_not_leak_" + "x" * 30)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "also-must-not-leak")
    code = "import os; print(sorted(os.environ)); print(open('/proc/1/environ').read())"
    result = run(backend, code)
    assert "must-not-leak" not in result.stdout and "must_not_leak" not in result.stdout
    names = set(eval(result.stdout.splitlines()[0]))  # noqa: S307 - our own printed list
    assert names <= {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "PYTHONPATH",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONUNBUFFERED",
        "PWD",
        "OLDPWD",
        "SHLVL",
    }


@pytest.mark.parametrize("address", ["1.1.1.1", "10.0.0.1", "127.0.0.1"])
def test_when_code_connects_out_then_no_route(backend: Backend, address: str) -> None:
    # For 127.0.0.1 a real server listens on the host's loopback: the sandbox must not reach it.
    import socket as host_socket

    listener = host_socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1] if address == "127.0.0.1" else 80
    code = f"""
        import socket
        s = socket.socket(); s.settimeout(3)
        try:
            s.connect(({address!r}, {port})); print('CONNECTED')
        except OSError as e:
            print('refused', type(e).__name__)
    """
    try:
        result = run(backend, code)
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()
    assert result.stdout.startswith("refused"), result.stdout


def test_when_code_resolves_a_name_then_dns_fails(backend: Backend) -> None:
    code = """
        import socket
        try:
            print(socket.getaddrinfo('example.com', 443))
        except OSError as e:
            print('no dns', type(e).__name__)
    """
    result = run(backend, code)
    assert result.stdout.startswith("no dns"), result.stdout


def test_when_process_daemonises_then_it_dies_with_the_sandbox(
    backend: Backend, tmp_path: Any
) -> None:
    # The daemon would print after its parent is gone; nothing of it may survive the sandbox.
    code = """
        import os, sys, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(3)
                print('DAEMON ALIVE', flush=True)
                os._exit(0)
            os._exit(0)
        print('parent done', flush=True)
    """
    result = run(backend, code, limits={"timeout_s": 10})
    assert result.status is Status.OK
    assert result.stdout == "parent done\n"
    assert result.wall_ms < 3000


def test_when_daemon_outlives_a_timeout_then_nothing_survives(backend: Backend) -> None:
    code = """
        import os, time, subprocess
        subprocess.Popen(['sleep', '600'], start_new_session=True)
        time.sleep(600)
    """
    result = run(backend, code, limits={"timeout_s": 2})
    assert result.status is Status.TIMEOUT
    # `run` asserted no process of the backend is left; also no stray `sleep 600` on the host.
    stray = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p) == "sleep600"]
    assert stray == []


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b"").decode(errors="replace")
    except OSError:
        return ""


def test_when_image_missing_then_unavailable_names_the_build_command(
    tmp_path: Any, images: Any, backend_factory: Any
) -> None:
    import shutil

    from sandbox.base import SandboxUnavailable

    # A changed recipe: neither its root filesystem nor its Docker image is built yet.
    recipes = tmp_path / "recipes"
    shutil.copytree(images.recipes_dir / "python", recipes / "python")
    with (recipes / "python" / "recipe.yaml").open("a") as recipe:
        recipe.write(f"# changed {uuid.uuid4().hex}\n")
    (tmp_path / "state").mkdir()
    empty = backend_factory(tmp_path / "state", recipes)
    assert "sandgate image build" in (empty.backend.checks()["image"] or "")
    spec = ExecutionSpec(execution_id=uuid.uuid4().hex, code="print(1)")
    with pytest.raises(SandboxUnavailable, match="sandgate image build python"):
        empty.loop.run(empty.backend.run(spec))


def test_when_runs_are_concurrent_then_each_gets_its_own_sandbox(backend: Backend) -> None:
    async def many() -> list[ExecutionResult]:
        specs = [
            ExecutionSpec(execution_id=uuid.uuid4().hex, code=f"print({i} * 2)") for i in range(4)
        ]
        results = await asyncio.gather(*(backend.backend.run(s) for s in specs))
        await backend.backend.settle()
        return results

    results = backend.loop.run(many())
    assert [r.stdout for r in results] == [f"{i * 2}\n" for i in range(4)]
    assert backend.leftovers() == []


def test_when_a_run_is_cancelled_then_its_sandbox_is_removed(backend: Backend) -> None:
    async def abandon() -> None:
        spec = ExecutionSpec(execution_id=uuid.uuid4().hex, code="import time; time.sleep(60)")
        task = asyncio.create_task(backend.run_async(spec))
        await _until(lambda: _sandbox_running(backend))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await backend.backend.settle()

    backend.loop.run(abandon())
    assert backend.leftovers() == []


def _sandbox_running(backend: Backend) -> bool:
    """A runsc process of the running sandbox is up (runsc; one kept ready by the pool is not
    listed), or its container runs (docker)."""
    return any(
        item.startswith("process") or item.endswith(" running") for item in backend.leftovers()
    )


async def _until(check: Any, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
