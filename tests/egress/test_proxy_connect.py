"""CONNECT tunnels: raw bytes and real TLS through allowed ones; refused ones open nothing."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from ._world import (
    EchoServer,
    OriginServer,
    ProxyRunner,
    TLSOriginServer,
    parse_answer,
    read_all,
    self_signed,
    unix_exchange,
)
from .conftest import proxy_opener_env


def _tunnel(sock_path: Path, target: str, first: bytes = b"") -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(sock_path))
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode() + first)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200 "), head
    return sock


def test_when_connect_is_allowlisted_then_raw_bytes_flow_both_ways_and_are_counted(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, echo: EchoServer
) -> None:
    runner = make_proxy([f"127.0.0.1:{echo.port}"], allow_private=True)
    payload = os.urandom(2_000_000)
    with _tunnel(sock_path, f"127.0.0.1:{echo.port}", first=b"hello-early ") as sock:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
        back = read_all(sock)
    assert back == b"hello-early " + payload
    [attempt] = runner.attempts(1)
    assert attempt.decision == "allow" and attempt.address == "127.0.0.1"
    assert attempt.bytes_up == attempt.bytes_down == len(back)
    assert echo.connections == 1


def test_when_connect_target_is_not_allowlisted_then_403_and_the_origin_sees_nothing(
    make_proxy: Callable[..., ProxyRunner],
    sock_path: Path,
    echo: EchoServer,
    forbidden: OriginServer,
) -> None:
    runner = make_proxy([f"127.0.0.1:{echo.port}"], allow_private=True)
    raw = f"CONNECT 127.0.0.1:{forbidden.port} HTTP/1.1\r\nHost: x\r\n\r\n\x16\x03\x01".encode()
    answer = parse_answer(unix_exchange(sock_path, raw))
    assert (answer.status, answer.headers["x-proxy-error"]) == (403, "blocked-by-allowlist")
    assert b"no allowlist entry matches" in answer.body
    [attempt] = runner.attempts(1)
    assert (attempt.decision, attempt.port, attempt.bytes_up) == ("deny", forbidden.port, 0)
    assert forbidden.connections == 0 and echo.connections == 0


@pytest.mark.parametrize(
    "request_head",
    [
        "CONNECT 127.0.0.1 HTTP/1.1\r\nHost: x\r\n\r\n",  # no port
        "CONNECT 127.0.0.1:0 HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT user@127.0.0.1:{e} HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT http://127.0.0.1:{e}/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT ::1:{e} HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT 127.0.0.1:{e} HTTP/1.1\r\n\r\n",  # HTTP/1.1 needs Host
        "CONNECT 127.0.0.1:{e} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "CONNECT 127.0.0.1:{e}\r\n\r\n",
    ],
)
def test_when_connect_request_is_malformed_then_it_is_refused(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, echo: EchoServer, request_head: str
) -> None:
    make_proxy([f"127.0.0.1:{echo.port}"], allow_private=True)
    answer = parse_answer(unix_exchange(sock_path, request_head.format(e=echo.port).encode()))
    assert answer.status in (400, 403)
    assert echo.connections == 0


def test_when_https_goes_through_an_allowed_tunnel_then_tls_verifies_end_to_end(
    tmp_path: Path,
    make_proxy: Callable[..., ProxyRunner],
    forwarder: Callable[[], int],
) -> None:
    pytest.importorskip("cryptography")  # to make the certificate
    cert, key = self_signed(tmp_path)
    origin = TLSOriginServer(cert, key)
    try:
        runner = make_proxy([f"127.0.0.1:{origin.port}"], allow_private=True)
        port = forwarder()
        context = ssl.create_default_context(cafile=str(cert))
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"https": f"http://127.0.0.1:{port}"}),
            urllib.request.HTTPSHandler(context=context),
        )
        with opener.open(f"https://127.0.0.1:{origin.port}/secure", timeout=10) as response:
            assert response.read() == b"origin:/secure"
        [attempt] = runner.attempts(1)
        assert attempt.decision == "allow" and attempt.bytes_down > 500  # certificate and all
        assert [seen.path for seen in origin.requests] == ["/secure"]
    finally:
        origin.stop()


CLIENT = """
import json, ssl, sys, urllib.error, urllib.request
context = ssl.create_default_context(cafile=sys.argv[1])
opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
out = []
for url in sys.argv[2:]:
    try:
        with opener.open(url, timeout=10) as r:
            out.append([r.status, r.read().decode()])
    except urllib.error.HTTPError as e:
        out.append([e.code, e.headers.get("X-Proxy-Error")])
    except OSError as e:
        out.append([0, str(e)])
print(json.dumps(out))
"""


def test_when_a_program_only_has_the_proxy_environment_then_http_and_https_work_as_allowed(
    tmp_path: Path,
    make_proxy: Callable[..., ProxyRunner],
    forwarder: Callable[[], int],
    allowed: OriginServer,
    forbidden: OriginServer,
) -> None:
    pytest.importorskip("cryptography")  # to make the certificate
    cert, key = self_signed(tmp_path)
    origin = TLSOriginServer(cert, key)
    try:
        runner = make_proxy(
            [f"127.0.0.1:{allowed.port}", f"127.0.0.1:{origin.port}"], allow_private=True
        )
        port = forwarder()
        urls = [
            f"http://127.0.0.1:{allowed.port}/plain",
            f"https://127.0.0.1:{origin.port}/tls",
            f"http://127.0.0.1:{forbidden.port}/no",
            f"https://127.0.0.1:{forbidden.port}/no",
        ]
        done = subprocess.run(
            [sys.executable, "-c", CLIENT, str(cert), *urls],
            env=proxy_opener_env(port),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        results = json.loads(done.stdout)
        assert results[0] == [200, "origin:/plain"]
        assert results[1] == [200, "origin:/tls"]
        assert results[2] == [403, "blocked-by-allowlist"]
        assert results[3][0] == 0 and "403" in results[3][1]  # http.client: "Tunnel ... 403"
        decisions = sorted((a.port, a.decision) for a in runner.attempts(4))
        assert decisions == sorted(
            [
                (allowed.port, "allow"),
                (origin.port, "allow"),
                (forbidden.port, "deny"),
                (forbidden.port, "deny"),
            ]
        )
        assert forbidden.connections == 0
    finally:
        origin.stop()
