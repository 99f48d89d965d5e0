"""Fixtures of the egress tests: servers on loopback, a proxy factory, and a watch on connects.

While a test of this folder runs, every TCP connect made by this process is recorded, and one
to an address outside loopback is refused before it leaves (PermissionError): a proxy bug must
fail a test here, never send a packet to 169.254.169.254 or a private range.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox.egress import forwarder_argv, forwarder_path

from ._world import EchoServer, OriginServer, ProxyRunner

_WATCH: dict[str, Any] = {"on": False, "connects": [], "refused": []}


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event != "socket.connect" or not _WATCH["on"]:
        return
    sock, address = args
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    _WATCH["connects"].append((address[0], address[1]))
    try:
        ip = ipaddress.ip_address(str(address[0]).partition("%")[0])
    except ValueError:
        ip = None
    if ip is None or not ip.is_loopback:
        _WATCH["refused"].append(address)
        raise PermissionError(f"egress tests connect only to loopback, not {address!r}")


sys.addaudithook(_audit)


@pytest.fixture(autouse=True)
def connects() -> Iterator[list[tuple[str, int]]]:
    """TCP connects made during the test, as (host, port); none may leave loopback."""
    _WATCH["connects"].clear()
    _WATCH["refused"].clear()
    _WATCH["on"] = True
    try:
        yield _WATCH["connects"]
    finally:
        _WATCH["on"] = False
    assert _WATCH["refused"] == [], "something tried to connect outside loopback"


@pytest.fixture
def allowed() -> Iterator[OriginServer]:
    """The origin the test policies allow."""
    server = OriginServer()
    yield server
    server.stop()


@pytest.fixture
def forbidden() -> Iterator[OriginServer]:
    """An origin no test policy allows; it must see no connection."""
    server = OriginServer()
    yield server
    server.stop()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    """A raw TCP echo origin, reached through CONNECT."""
    server = EchoServer()
    yield server
    server.stop()


@pytest.fixture
def sock_path(tmp_path: Path) -> Path:
    """Where a test's proxy listens (AF_UNIX paths must stay short)."""
    return tmp_path / "egress.sock"


@pytest.fixture
def make_proxy(sock_path: Path) -> Iterator[Callable[..., ProxyRunner]]:
    """Start an EgressProxy on its own loop; each is closed and checked for leftovers."""
    runners: list[ProxyRunner] = []

    def make(allow: list[str], **kwargs: Any) -> ProxyRunner:
        runner = ProxyRunner(sock_path, allow, **kwargs)
        runners.append(runner)
        return runner

    yield make
    for runner in runners:
        runner.close()
        assert not sock_path.exists()


@pytest.fixture
def forwarder(sock_path: Path) -> Iterator[Callable[[], int]]:
    """Start the forwarder script as a real subprocess; returns its port."""
    procs: list[subprocess.Popen[str]] = []

    def start() -> int:
        argv = forwarder_argv(sys.executable, str(forwarder_path()), str(sock_path), 0)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY "), line
        return int(line.split()[1])

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


def proxy_opener_env(port: int) -> dict[str, str]:
    """The environment a sandboxed program gets, on top of this one's."""
    from sandbox.egress import proxy_env

    return {**os.environ, **proxy_env(port)}
