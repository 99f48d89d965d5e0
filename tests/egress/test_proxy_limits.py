"""Caps and timeouts under attack: big uploads and downloads, slow clients, connection floods."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.egress import EgressCaps

from ._world import EchoServer, OriginServer, ProxyRunner, parse_answer, read_all, unix_exchange

KiB = 1024


def _connect(sock_path: Path, timeout: float = 10) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(sock_path))  # blocking: a Unix connect with a timeout fails on a full backlog
    sock.settimeout(timeout)
    return sock


def test_when_an_upload_passes_the_connection_cap_then_it_is_cut_and_recorded(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    cap = 64 * KiB
    runner = make_proxy(
        [f"127.0.0.1:{allowed.port}"],
        allow_private=True,
        caps=EgressCaps(bytes_per_connection=cap),
    )
    body = b"u" * (4 * 1024 * KiB)
    head = (
        f"POST http://127.0.0.1:{allowed.port}/up HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{allowed.port}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with _connect(sock_path) as sock:
        try:
            sock.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the proxy closed on us mid-upload: what should happen
        reply = read_all(sock)
    assert not reply.startswith(b"HTTP/1.1 200")
    [attempt] = runner.attempts(1)
    assert attempt.decision == "allow"
    assert f"closed: per-connection byte cap ({cap} bytes) reached" in attempt.reason
    assert attempt.bytes_up <= cap and attempt.bytes_down == 0
    deadline = time.monotonic() + 5
    while not allowed.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    [seen] = allowed.requests
    assert seen.body_bytes < cap


def test_when_a_tunnel_download_passes_the_connection_cap_then_it_is_cut(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, echo: EchoServer
) -> None:
    cap = 100 * KiB
    runner = make_proxy(
        [f"127.0.0.1:{echo.port}"], allow_private=True, caps=EgressCaps(bytes_per_connection=cap)
    )
    with _connect(sock_path) as sock:
        sock.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        try:
            sock.sendall(b"e" * (1024 * KiB))
        except (BrokenPipeError, ConnectionResetError):
            pass
        back = read_all(sock)
    [attempt] = runner.attempts(1)
    assert "per-connection byte cap" in attempt.reason
    assert attempt.bytes_up + attempt.bytes_down <= cap
    assert len(back) <= cap + 100  # the 200 answer plus at most the capped echo


def test_when_the_execution_budget_is_spent_then_running_and_new_connections_stop(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    runner = make_proxy(
        [f"127.0.0.1:{allowed.port}"],
        allow_private=True,
        caps=EgressCaps(bytes_per_execution=300 * KiB),
    )

    def download(size: int) -> bytes:
        raw = (
            f"GET http://127.0.0.1:{allowed.port}/big?n={size} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{allowed.port}\r\n\r\n"
        ).encode()
        return unix_exchange(sock_path, raw)

    assert len(download(200 * KiB)) > 200 * KiB  # within budget: whole
    cut = download(200 * KiB)  # crosses the budget: cut short
    assert len(cut) < 100 * KiB + 200
    refused = parse_answer(download(10))
    assert (refused.status, refused.headers["x-proxy-error"]) == (403, "byte-limit")
    runner.attempts(3)  # wait for all three; the proxy lists them in the order they began
    first, second, third = runner.proxy.attempts
    assert "closed" not in first.reason
    assert "closed: per-execution byte cap" in second.reason
    assert third.decision == "deny" and "already reached" in third.reason
    assert runner.proxy.bytes_total <= 300 * KiB


def test_when_a_client_sends_its_head_byte_by_byte_then_the_header_timeout_closes_it(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    runner = make_proxy(
        [f"127.0.0.1:{allowed.port}"], allow_private=True, caps=EgressCaps(header_timeout_s=1.0)
    )
    head = f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}\r\n"
    start = time.monotonic()
    with _connect(sock_path) as sock:
        sock.sendall(head.encode())
        closed_after = None
        for _ in range(40):  # one more header byte every 0.1 s, never the blank line
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - start
                break
            time.sleep(0.1)
        reply = read_all(sock)
        closed_after = closed_after or time.monotonic() - start
    assert 0.9 <= closed_after < 3.0
    assert parse_answer(reply).headers["x-proxy-error"] == "header-timeout"
    [attempt] = runner.attempts(1)
    assert attempt.decision == "deny" and "header timeout" in attempt.reason
    assert allowed.connections == 0


def test_when_a_body_stalls_then_the_idle_timeout_closes_both_sides(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, echo: EchoServer
) -> None:
    runner = make_proxy(
        [f"127.0.0.1:{echo.port}"], allow_private=True, caps=EgressCaps(idle_timeout_s=0.5)
    )
    start = time.monotonic()
    with _connect(sock_path) as sock:
        sock.sendall(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\nHost: x\r\n\r\nping".encode())
        back = read_all(sock)  # sends nothing more: the tunnel goes idle
    assert back.endswith(b"ping")
    assert 0.4 <= time.monotonic() - start < 3.0
    [attempt] = runner.attempts(1)
    assert "closed: idle for 0.5 s" in attempt.reason
    assert echo.closed.wait(5)


def test_when_thousands_of_connections_arrive_then_only_the_cap_is_served(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    cap, total = 50, 2000
    runner = make_proxy(
        [f"127.0.0.1:{allowed.port}"],
        allow_private=True,
        caps=EgressCaps(connections_per_execution=cap, header_timeout_s=2.0),
    )
    socks = []
    try:
        for _ in range(total):
            socks.append(_connect(sock_path))
        refused = 0
        for sock in socks[cap:]:
            answer = read_all(sock)
            refused += b"X-Proxy-Error: connection-limit" in answer
        assert refused == total - cap
    finally:
        for sock in socks:
            sock.close()
    # Past the cap even a well-formed request to an allowed origin is refused.
    raw = f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}\r\n\r\n"
    assert parse_answer(unix_exchange(sock_path, raw.encode())).status == 403
    assert runner.proxy.refused_connections == total - cap + 1
    records = [a for a in runner.proxy.attempts if "connection cap" in a.reason]
    assert len(records) == 1 and records[0].decision == "deny"
    assert len(runner.proxy.attempts) <= cap + 1
    assert allowed.connections == 0


def test_when_a_head_is_too_large_then_431_and_nothing_is_forwarded(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    raw = (
        f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\n"
        + "".join(f"X-Pad-{i}: {'p' * 1000}\r\n" for i in range(100))
        + "\r\n"
    )
    assert parse_answer(unix_exchange(sock_path, raw.encode())).status == 431
    assert allowed.connections == 0


def test_when_too_many_connections_are_open_at_once_then_one_more_is_refused(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    runner = make_proxy(
        [f"127.0.0.1:{allowed.port}"],
        allow_private=True,
        caps=EgressCaps(open_connections=4, header_timeout_s=30),
    )
    request = (
        f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}\r\n\r\n"
    ).encode()
    held = [_connect(sock_path) for _ in range(4)]  # open, sending nothing
    try:
        time.sleep(0.2)
        answer = parse_answer(unix_exchange(sock_path, request))
        assert (answer.status, answer.headers["x-proxy-error"]) == (403, "connection-limit")
        assert b"4 connections already open" in answer.body
    finally:
        held.pop().close()
    time.sleep(0.2)  # one slot free again
    try:
        assert parse_answer(unix_exchange(sock_path, request)).status == 200
    finally:
        for sock in held:
            sock.close()
    assert [a.decision for a in runner.attempts(2)] == ["deny", "allow"]
