"""The in-sandbox forwarder as a real process: readiness, speed of start, piping, parent death."""

from __future__ import annotations

import ast
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.egress import READY_PREFIX, forwarder_argv, forwarder_path, forwarder_source

from ._world import digest, read_all

# The distribution's interpreter, as in the sandbox image (a pyenv shim would add its own start).
PYTHON = "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else sys.executable


class UnixEcho:
    """A Unix-socket echo server standing in for the proxy."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(64)
        self.threads: list[threading.Thread] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)


@pytest.fixture
def unix_echo(sock_path: Path) -> Iterator[UnixEcho]:
    server = UnixEcho(sock_path)
    yield server
    server.sock.close()


def _start(sock_path: Path, *extra: str) -> tuple[subprocess.Popen[str], int, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        forwarder_argv(PYTHON, str(forwarder_path()), str(sock_path), 0, *extra),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - started
    assert line.startswith(READY_PREFIX), line
    return proc, int(line.split()[1]), elapsed


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(5)
    if proc.stdout:
        proc.stdout.close()


def test_when_source_is_read_then_it_imports_only_the_standard_library() -> None:
    tree = ast.parse(forwarder_source())
    modules = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        if node.module
    }
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}


def test_when_started_then_it_is_ready_within_50_ms(sock_path: Path, unix_echo: UnixEcho) -> None:
    times = []
    for _ in range(10):  # the best of ten: other work on a 2-core machine only slows a start
        proc, port, elapsed = _start(sock_path)
        times.append(elapsed)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"ready?")
            assert client.recv(10) == b"ready?"  # listening when it said so
        _stop(proc)
    assert min(times) < 0.05, times


def test_when_a_ready_file_is_asked_for_then_it_holds_the_port(
    tmp_path: Path, sock_path: Path, unix_echo: UnixEcho
) -> None:
    ready = tmp_path / "ready"
    proc, port, _ = _start(sock_path, str(ready))
    try:
        assert ready.read_text() == f"{port}\n"
    finally:
        _stop(proc)


def test_when_many_connections_pipe_big_payloads_then_every_byte_arrives_in_order(
    sock_path: Path, unix_echo: UnixEcho
) -> None:
    proc, port, _ = _start(sock_path)
    results: dict[int, tuple[str, str]] = {}

    def one(i: int) -> None:
        payload = os.urandom(3_000_000 + i)
        with socket.create_connection(("127.0.0.1", port), timeout=20) as client:

            def send() -> None:
                client.sendall(payload)
                client.shutdown(socket.SHUT_WR)

            sender = threading.Thread(target=send)
            sender.start()
            back = read_all(client)
            sender.join()
        results[i] = (digest(payload), digest(back))

    try:
        workers = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(60)
        assert len(results) == 8
        assert all(sent == back for sent, back in results.values())
    finally:
        _stop(proc)


def test_when_no_proxy_listens_then_clients_are_closed_not_hung(tmp_path: Path) -> None:
    proc, port, _ = _start(tmp_path / "absent.sock")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            assert read_all(client) == b""
        assert proc.poll() is None  # still serving
    finally:
        _stop(proc)


PARENT = """
import subprocess, sys, time
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
print(child.pid, child.stdout.readline().strip(), flush=True)
time.sleep(60)
"""


def test_when_its_parent_dies_then_it_exits(sock_path: Path, unix_echo: UnixEcho) -> None:
    argv = forwarder_argv(PYTHON, str(forwarder_path()), str(sock_path), 0)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, *argv], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pid_text, ready, _port = parent.stdout.readline().split()
        assert ready == "READY"
        child = int(pid_text)
        os.kill(child, 0)  # alive
        parent.kill()
        parent.wait(5)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            _reap(child)
            time.sleep(0.05)
        else:
            os.kill(child, 9)
            pytest.fail("the forwarder outlived its parent")
    finally:
        if parent.stdout:
            parent.stdout.close()


def _reap(pid: int) -> None:
    """The orphan is re-parented to init (or a subreaper); reap it if that is us."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


@pytest.mark.parametrize("argv", [[], ["/x.sock"], ["/x.sock", "port"], ["/x.sock", "70000"]])
def test_when_arguments_are_wrong_then_it_exits_2(argv: list[str]) -> None:
    done = subprocess.run(
        [PYTHON, str(forwarder_path()), *argv], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 2 and "usage" in done.stderr
