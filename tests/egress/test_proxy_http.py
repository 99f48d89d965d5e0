"""Plain HTTP through the proxy: what is forwarded, and every smuggling trick refused."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from ._world import OriginServer, ProxyRunner, parse_answer, unix_exchange


def _opener(proxy_url: str) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy_url, "https": proxy_url})
    )


def test_when_url_is_allowlisted_then_urllib_through_the_forwarder_gets_the_origin_answer(
    make_proxy: Callable[..., ProxyRunner],
    forwarder: Callable[[], int],
    allowed: OriginServer,
    forbidden: OriginServer,
) -> None:
    runner = make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    port = forwarder()
    with _opener(f"http://127.0.0.1:{port}").open(
        f"http://127.0.0.1:{allowed.port}/hello?x=1", timeout=10
    ) as response:
        assert response.status == 200
        assert response.read() == b"origin:/hello?x=1"
    [attempt] = runner.attempts(1)
    assert (attempt.host, attempt.port, attempt.decision) == ("127.0.0.1", allowed.port, "allow")
    assert attempt.address == "127.0.0.1"
    assert attempt.reason == f"allowed by entry 127.0.0.1:{allowed.port}"
    assert attempt.bytes_up > 0 and attempt.bytes_down > len(b"origin:/hello?x=1")
    [seen] = allowed.requests
    assert seen.path == "/hello?x=1"  # origin form, not the absolute URL
    assert dict(seen.headers)["Host"] == f"127.0.0.1:{allowed.port}"
    assert forbidden.connections == 0


def test_when_url_is_not_allowlisted_then_urllib_gets_403_with_reason_and_origin_sees_nothing(
    make_proxy: Callable[..., ProxyRunner],
    forwarder: Callable[[], int],
    allowed: OriginServer,
    forbidden: OriginServer,
) -> None:
    runner = make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    port = forwarder()
    with pytest.raises(urllib.error.HTTPError) as caught:
        _opener(f"http://127.0.0.1:{port}").open(f"http://127.0.0.1:{forbidden.port}/", timeout=10)
    assert caught.value.code == 403
    assert caught.value.headers["X-Proxy-Error"] == "blocked-by-allowlist"
    assert b"no allowlist entry matches 127.0.0.1:" in caught.value.read()
    caught.value.close()
    [attempt] = runner.attempts(1)
    assert attempt.decision == "deny" and attempt.address is None
    assert forbidden.connections == 0


def test_when_proxy_url_carries_credentials_then_they_reach_no_origin_and_no_record(
    make_proxy: Callable[..., ProxyRunner], forwarder: Callable[[], int], allowed: OriginServer
) -> None:
    runner = make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    port = forwarder()
    opener = _opener(f"http://agent:s3cr3t-pw@127.0.0.1:{port}")
    with opener.open(f"http://127.0.0.1:{allowed.port}/creds", timeout=10) as response:
        assert response.status == 200
    token = base64.b64encode(b"agent:s3cr3t-pw").decode()
    [seen] = allowed.requests
    names = {name.lower() for name, _ in seen.headers}
    assert "proxy-authorization" not in names
    assert not any("s3cr3t" in value or token in value for _, value in seen.headers)
    [attempt] = runner.attempts(1)
    assert "s3cr3t" not in attempt.model_dump_json() and token not in attempt.model_dump_json()


def test_when_request_names_hop_by_hop_headers_then_they_are_stripped(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    raw = (
        f"GET http://127.0.0.1:{allowed.port}/hop HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{allowed.port}\r\n"
        "Proxy-Authorization: Basic c2VjcmV0OnB3\r\n"
        "Proxy-Connection: keep-alive\r\n"
        "Connection: keep-alive, X-Internal\r\n"
        "X-Internal: do-not-forward\r\n"
        "Keep-Alive: timeout=5\r\n"
        "Upgrade: websocket\r\n"
        "TE: trailers\r\n"
        "X-Kept: yes\r\n\r\n"
    ).encode()
    answer = parse_answer(unix_exchange(sock_path, raw))
    assert answer.status == 200
    [seen] = allowed.requests
    names = {name.lower() for name, _ in seen.headers}
    assert "x-kept" in names
    gone = {"proxy-authorization", "proxy-connection", "x-internal", "keep-alive", "upgrade", "te"}
    assert not names & gone
    assert dict(seen.headers)["Connection"] == "close"


@pytest.mark.parametrize(
    ("target", "host_header", "code"),
    [
        # the URL names the allowed origin, the Host header another one
        ("http://127.0.0.1:{a}/", "127.0.0.1:{f}", "host-mismatch"),
        # the URL names the forbidden origin, the Host header the allowed one
        ("http://127.0.0.1:{f}/", "127.0.0.1:{a}", "host-mismatch"),
        ("http://127.0.0.1:{a}/", "localhost:{a}", "host-mismatch"),
        ("http://127.0.0.1:{a}/", "127.0.0.1", "host-mismatch"),  # port 80 implied
        ("http://127.0.0.1:{a}/", "127.0.0.1:{a}@evil", "host-mismatch"),
        # absolute-form URL straight to another host
        ("http://127.0.0.1:{f}/", "127.0.0.1:{f}", "blocked-by-allowlist"),
        ("http://localhost:{f}/", "localhost:{f}", "blocked-by-allowlist"),
        # userinfo in the URL
        ("http://user:pw@127.0.0.1:{a}/", "127.0.0.1:{a}", "invalid-host"),
        # origin form: a proxy request must say where it goes in its URL
        ("/", "127.0.0.1:{a}", "bad-request"),
        ("https://127.0.0.1:{a}/", "127.0.0.1:{a}", "bad-request"),
        ("ftp://127.0.0.1:{a}/", "127.0.0.1:{a}", "bad-request"),
    ],
)
def test_when_url_and_host_header_disagree_or_point_elsewhere_then_nothing_is_forwarded(
    make_proxy: Callable[..., ProxyRunner],
    sock_path: Path,
    allowed: OriginServer,
    forbidden: OriginServer,
    target: str,
    host_header: str,
    code: str,
) -> None:
    runner = make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    ports = {"a": allowed.port, "f": forbidden.port}
    raw = (
        f"GET {target.format(**ports)} HTTP/1.1\r\nHost: {host_header.format(**ports)}\r\n\r\n"
    ).encode()
    answer = parse_answer(unix_exchange(sock_path, raw))
    assert answer.headers["x-proxy-error"] == code
    assert answer.status in (400, 403) and answer.body.strip()
    [attempt] = runner.attempts(1)
    assert attempt.decision == "deny" and attempt.address is None
    assert allowed.connections == 0 and forbidden.connections == 0


def test_when_two_host_headers_are_sent_then_the_request_is_refused(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    raw = (
        f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{allowed.port}\r\nHost: 127.0.0.1:1\r\n\r\n"
    ).encode()
    assert parse_answer(unix_exchange(sock_path, raw)).status == 400
    assert allowed.connections == 0


def test_when_a_second_request_is_pipelined_then_only_the_first_reaches_its_origin(
    make_proxy: Callable[..., ProxyRunner],
    sock_path: Path,
    allowed: OriginServer,
    forbidden: OriginServer,
) -> None:
    make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    first = f"GET http://127.0.0.1:{allowed.port}/one HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}"
    second = (
        f"GET http://127.0.0.1:{forbidden.port}/two HTTP/1.1\r\nHost: 127.0.0.1:{forbidden.port}"
    )
    third = f"GET /three HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}"
    raw = "\r\n\r\n".join([first, second, third]).encode() + b"\r\n\r\n"
    answer = parse_answer(unix_exchange(sock_path, raw))
    assert answer.status == 200 and answer.body == b"origin:/one"
    assert [seen.path for seen in allowed.requests] == ["/one"]
    assert forbidden.connections == 0


def test_when_content_length_and_chunked_conflict_then_origin_sees_one_consistent_request(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    smuggled = f"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}\r\n\r\n"
    raw = (
        f"POST http://127.0.0.1:{allowed.port}/up HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{allowed.port}\r\n"
        f"Content-Length: {len(smuggled) + 5}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n" + smuggled
    ).encode()
    answer = parse_answer(unix_exchange(sock_path, raw))
    assert answer.status == 200 and answer.body == b"0"
    assert [(s.method, s.path) for s in allowed.requests] == [("POST", "/up")]


def test_when_body_is_chunked_or_sized_then_it_arrives_whole(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    runner = make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    head = f"POST http://127.0.0.1:{allowed.port}/up HTTP/1.1\r\nHost: 127.0.0.1:{allowed.port}\r\n"
    body = b"z" * 300_000
    sized = head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    chunked = head.encode() + b"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
    chunked += b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:1000], body[1000:]))
    chunked += b"0\r\n\r\n"
    assert parse_answer(unix_exchange(sock_path, sized)).body == b"300000"
    raw = unix_exchange(sock_path, chunked)
    assert raw.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert parse_answer(raw.split(b"\r\n\r\n", 1)[1]).body == b"300000"
    assert [s.body_bytes for s in allowed.requests] == [300_000, 300_000]
    assert all(a.bytes_up > 300_000 for a in runner.attempts(2))


@pytest.mark.parametrize(
    "target",
    [
        "http://2130706433:{a}/",
        "http://0177.0.0.1:{a}/",
        "http://0x7f.0.0.1:{a}/",
        "http://0x7f000001:{a}/",
        "http://127.1:{a}/",
        "http://017700000001:{a}/",
        "http://%31%32%37.0.0.1:{a}/",
        "http://[::1%25lo]:{a}/",
    ],
)
def test_when_url_spells_an_ip_the_libc_way_then_it_is_refused_as_invalid(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer, target: str
) -> None:
    runner = make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    url = target.format(a=allowed.port)
    raw = f"GET {url} HTTP/1.1\r\nHost: {url[7:].split('/')[0]}\r\n\r\n".encode()
    answer = parse_answer(unix_exchange(sock_path, raw))
    assert (answer.status, answer.headers["x-proxy-error"]) == (403, "invalid-host")
    [attempt] = runner.attempts(1)
    assert attempt.decision == "deny" and attempt.port == allowed.port
    assert attempt.host == url[7:].split("/")[0].rpartition(":")[0]
    assert allowed.connections == 0


def test_when_connect_spells_an_ip_the_libc_way_then_it_is_refused(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=True)
    raw = f"CONNECT 2130706433:{allowed.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    answer = parse_answer(unix_exchange(sock_path, raw))
    assert (answer.status, answer.headers["x-proxy-error"]) == (403, "invalid-host")
    assert allowed.connections == 0
