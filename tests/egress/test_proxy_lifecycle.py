"""Start and shutdown: nothing of a proxy outlives aclose(); callbacks and filters that fail."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.base import EgressAttempt
from sandbox.egress import Allowlist, EgressCaps, EgressProxy, IPAddress, Verdict

from ._world import EchoServer, OriginServer, ProxyRunner, parse_answer, read_all, unix_exchange


def _sockets() -> set[str]:
    """This process's open socket inodes."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


class _SlowResolver:
    """A resolver that never answers, to catch aclose() while a lookup is pending."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.started.set()
        await asyncio.sleep(3600)
        return []


def test_when_closed_mid_traffic_then_no_socket_task_or_file_is_left(
    sock_path: Path, echo: EchoServer, allowed: OriginServer
) -> None:
    time.sleep(0.1)  # let the servers' own sockets settle before the baseline
    baseline = _sockets()
    resolver = _SlowResolver()
    runner = ProxyRunner(
        sock_path,
        [f"127.0.0.1:{echo.port}", "slow.test:80"],
        allow_private=True,
        resolver=resolver,
    )
    tunnel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lookup = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        tunnel.connect(str(sock_path))
        tunnel.settimeout(10)
        tunnel.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\nHost: x\r\n\r\nopen".encode())
        slow.connect(str(sock_path))
        slow.sendall(b"GET http://127.0.0.1/ HTTP/1.1\r\nHo")  # a head that never ends
        lookup.connect(str(sock_path))
        lookup.sendall(b"GET http://slow.test/ HTTP/1.1\r\nHost: slow.test\r\n\r\n")
        got = b""
        while not got.endswith(b"open"):
            got += tunnel.recv(100)
        deadline = time.monotonic() + 5
        while not resolver.started.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sock_path.exists() and stat.S_IMODE(sock_path.stat().st_mode) == 0o600
        assert runner.tasks_left() >= 3

        started = time.monotonic()
        runner.call(runner.proxy.aclose())
        assert time.monotonic() - started < 2
        assert runner.tasks_left() == 0
        assert not sock_path.exists()
        for client in (tunnel, slow, lookup):
            client.settimeout(5)
            read_all(client)  # end of stream, not a hang
        assert echo.closed.wait(5)  # the origin side was closed too
        records = runner.attempts(2)
        reasons = sorted(a.reason for a in records)
        assert any("closed: the proxy shut down" in r for r in reasons)
        assert any("shut down before a connection was made" in r for r in reasons)
    finally:
        for client in (tunnel, slow, lookup):
            client.close()
        runner.close()
    deadline = time.monotonic() + 5
    while _sockets() - baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sockets() - baseline == set()
    assert allowed.connections == 0


def test_when_used_as_a_context_manager_then_exit_closes_it(tmp_path: Path) -> None:
    path = tmp_path / "ctx.sock"

    async def scenario() -> tuple[bool, bool, int]:
        async with EgressProxy(Allowlist([])) as proxy:
            await proxy.start(path, mode=0o660)
            mode = stat.S_IMODE(path.stat().st_mode)
            listening = path.exists()
        left = len(asyncio.all_tasks() - {asyncio.current_task()})
        return listening and mode == 0o660, path.exists(), left

    assert asyncio.run(scenario()) == (True, False, 0)


def test_when_started_twice_or_on_a_taken_path_then_it_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "twice.sock"

    async def scenario() -> None:
        first = EgressProxy(Allowlist([]))
        await first.start(path)
        with pytest.raises(RuntimeError):
            await first.start(path)
        second = EgressProxy(Allowlist([]))
        with pytest.raises(OSError):
            await second.start(path)  # must not remove the first proxy's socket
        assert path.exists()
        await second.aclose()
        await first.aclose()
        await first.aclose()  # idempotent
        assert not path.exists()

    asyncio.run(scenario())


def test_when_the_callback_is_async_then_aclose_waits_for_it(
    tmp_path: Path, allowed: OriginServer
) -> None:
    path = tmp_path / "cb.sock"
    seen: list[EgressAttempt] = []

    async def audit(attempt: EgressAttempt) -> None:
        await asyncio.sleep(0.2)
        seen.append(attempt)

    async def scenario() -> None:
        async with EgressProxy(Allowlist([]), on_attempt=audit) as proxy:
            await proxy.start(path)
            raw = f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}"
            answer = await asyncio.to_thread(unix_exchange, path, raw.encode() + b"\r\n\r\n")
            assert parse_answer(answer).status == 403
        assert [a.decision for a in seen] == ["deny"]
        assert len(asyncio.all_tasks() - {asyncio.current_task()}) == 0

    asyncio.run(scenario())


def test_when_the_callback_raises_then_the_proxy_keeps_serving(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    calls: list[str] = []

    def broken(attempt: EgressAttempt) -> None:
        calls.append(attempt.decision)
        raise RuntimeError("audit store down")

    make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True, on_attempt=broken)
    raw = f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}\r\n\r\n"
    for _ in range(2):
        assert parse_answer(unix_exchange(sock_path, raw.encode())).status == 200
    deadline = time.monotonic() + 5  # the record is finished just after the client's EOF
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert calls == ["allow", "allow"]


class _ExplodingFilter:
    """A filter that fails: the proxy must deny, never allow."""

    def check(self, host: str, port: int) -> Verdict:
        raise RuntimeError("policy store unreachable")

    def names_address(self, address: IPAddress, port: int) -> bool:
        raise RuntimeError("policy store unreachable")


def test_when_the_filter_raises_then_the_attempt_is_denied(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    runner = make_proxy([], allow_private=True, egress_filter=_ExplodingFilter())
    raw = f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}\r\n\r\n"
    answer = parse_answer(unix_exchange(sock_path, raw.encode()))
    assert (answer.status, answer.headers["x-proxy-error"]) == (403, "blocked-by-allowlist")
    assert b"filter error" in answer.body
    assert runner.attempts(1)[0].decision == "deny"
    assert allowed.connections == 0


def test_when_caps_are_nonsense_then_they_are_rejected() -> None:
    for bad in ({"bytes_per_connection": 0}, {"header_timeout_s": -1}, {"unknown": 1}):
        with pytest.raises(ValueError):
            EgressCaps(**bad)
