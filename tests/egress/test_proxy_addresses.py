"""Names and addresses: resolved once, non-public ones refused, the checked one pinned."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ._world import (
    FlippingResolver,
    MapResolver,
    OriginServer,
    ProxyRunner,
    parse_answer,
    unix_exchange,
)


def _get(sock_path: Path, host: str, port: int, path: str = "/") -> tuple[int, str, bytes]:
    authority = f"{host}:{port}"
    raw = f"GET http://{authority}{path} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    answer = parse_answer(unix_exchange(sock_path, raw))
    return answer.status, answer.headers.get("x-proxy-error", ""), answer.body


@pytest.mark.parametrize("allow_private", [False, True])
def test_when_an_allowlisted_name_resolves_to_loopback_then_it_is_refused(
    make_proxy: Callable[..., ProxyRunner],
    sock_path: Path,
    allowed: OriginServer,
    connects: list[tuple[str, int]],
    allow_private: bool,
) -> None:
    # The real system resolver: localhost is 127.0.0.1 (and maybe ::1) on every host.
    runner = make_proxy([f"localhost:{allowed.port}"], allow_private=allow_private)
    status, code, body = _get(sock_path, "localhost", allowed.port)
    assert (status, code) == (403, "blocked-address")
    assert b"loopback" in body
    assert (b"must name the exact address" in body) is allow_private
    [attempt] = runner.attempts(1)
    assert attempt.decision == "deny" and "loopback" in attempt.reason
    assert allowed.connections == 0
    assert all(port != allowed.port for _, port in connects)


def test_when_private_is_allowed_and_the_policy_names_the_address_then_the_name_may_reach_it(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    resolver = MapResolver({"lab.test": ["127.0.0.1"]})
    entries = [f"lab.test:{allowed.port}", f"127.0.0.1:{allowed.port}"]
    runner = make_proxy(entries, allow_private=True, resolver=resolver)
    assert _get(sock_path, "lab.test", allowed.port)[0] == 200
    [attempt] = runner.attempts(1)
    assert (attempt.host, attempt.address) == ("lab.test", "127.0.0.1")
    assert dict(allowed.requests[0].headers)["Host"] == f"lab.test:{allowed.port}"


def test_when_private_is_not_allowed_then_even_an_exact_loopback_entry_is_refused(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, allowed: OriginServer
) -> None:
    runner = make_proxy([f"127.0.0.1:{allowed.port}"], allow_private=False)
    status, code, body = _get(sock_path, "127.0.0.1", allowed.port)
    assert (status, code) == (403, "blocked-address")
    assert b"127.0.0.1 (loopback)" in body
    assert runner.attempts(1)[0].decision == "deny"
    assert allowed.connections == 0


@pytest.mark.parametrize(
    ("answer", "category"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ("10.0.0.5", "private"),
        ("192.168.1.10", "private"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "unspecified"),
    ],
)
def test_when_a_name_resolves_to_a_non_public_address_then_no_connection_is_made(
    make_proxy: Callable[..., ProxyRunner],
    sock_path: Path,
    connects: list[tuple[str, int]],
    answer: str,
    category: str,
) -> None:
    resolver = MapResolver({"internal.test": [answer]})
    # allow_private on and the address named too: only metadata stays shut, the rest is
    # refused because the policy names the name, not the address.
    named = f"[{answer}]:80" if ":" in answer else f"{answer}:80"
    entries = ["internal.test:80"] + ([named] if "metadata" in category else [])
    runner = make_proxy(entries, allow_private=True, resolver=resolver)
    status, code, body = _get(sock_path, "internal.test", 80)
    assert (status, code) == (403, "blocked-address")
    assert category.encode() in body
    [attempt] = runner.attempts(1)
    assert attempt.decision == "deny" and attempt.address is None
    assert connects == [] or all(port != 80 for _, port in connects)
    assert resolver.calls == ["internal.test"]


@pytest.mark.parametrize(
    "target", ["169.254.169.254:80", "[fd00:ec2::254]:80", "[::ffff:169.254.169.254]:80"]
)
def test_when_connect_names_the_metadata_address_then_it_is_refused_even_if_listed(
    make_proxy: Callable[..., ProxyRunner],
    sock_path: Path,
    connects: list[tuple[str, int]],
    target: str,
) -> None:
    runner = make_proxy([target], allow_private=True)
    raw = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode()
    answer = parse_answer(unix_exchange(sock_path, raw))
    assert (answer.status, answer.headers["x-proxy-error"]) == (403, "blocked-address")
    assert b"cloud metadata" in answer.body
    assert runner.attempts(1)[0].decision == "deny"
    assert connects == []


@pytest.fixture
def twin() -> Iterator[OriginServer]:
    """The forbidden origin on 127.0.0.2, where a rebinding DNS would send a second lookup."""
    server = OriginServer("127.0.0.2")
    yield server
    server.stop()


def test_when_a_name_resolves_differently_each_time_then_one_lookup_is_made_and_pinned(
    make_proxy: Callable[..., ProxyRunner],
    sock_path: Path,
    allowed: OriginServer,
    connects: list[tuple[str, int]],
) -> None:
    # The twin listens on the allowed port number at 127.0.0.2, so a second lookup would
    # land on it: the rebinding attack. The proxy must connect to what it checked.
    twin = OriginServer("127.0.0.2", allowed.port)
    try:
        resolver = FlippingResolver({"rebind.test": ["127.0.0.1", "127.0.0.2", "127.0.0.2"]})
        entries = [f"rebind.test:{allowed.port}", f"127.0.0.1:{allowed.port}"]
        runner = make_proxy(entries, allow_private=True, resolver=resolver)
        assert _get(sock_path, "rebind.test", allowed.port, "/pinned")[0] == 200
        assert resolver.calls == ["rebind.test"]
        assert ("127.0.0.1", allowed.port) in connects
        assert ("127.0.0.2", allowed.port) not in connects
        assert [s.path for s in allowed.requests] == ["/pinned"] and twin.connections == 0
        assert runner.attempts(1)[0].address == "127.0.0.1"
        # The next attempt looks up again, gets 127.0.0.2, which no entry names: refused.
        status, code, body = _get(sock_path, "rebind.test", allowed.port)
        assert (status, code) == (403, "blocked-address") and b"127.0.0.2" in body
        assert resolver.calls == ["rebind.test", "rebind.test"]
        assert twin.connections == 0
    finally:
        twin.stop()


def test_when_a_name_has_public_and_private_answers_then_only_a_checked_one_is_dialled(
    make_proxy: Callable[..., ProxyRunner],
    sock_path: Path,
    allowed: OriginServer,
    connects: list[tuple[str, int]],
) -> None:
    resolver = MapResolver({"mixed.test": ["10.1.2.3", "127.0.0.1"]})
    entries = [f"mixed.test:{allowed.port}", f"127.0.0.1:{allowed.port}"]
    runner = make_proxy(entries, allow_private=True, resolver=resolver)
    assert _get(sock_path, "mixed.test", allowed.port)[0] == 200
    assert connects.count(("127.0.0.1", allowed.port)) == 1
    assert not any(host == "10.1.2.3" for host, _ in connects)
    assert runner.attempts(1)[0].address == "127.0.0.1"


def test_when_a_name_does_not_resolve_then_502_and_a_denied_record(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path
) -> None:
    runner = make_proxy(["nowhere.test:80"], resolver=MapResolver({}))
    status, code, body = _get(sock_path, "nowhere.test", 80)
    assert (status, code) == (502, "resolve-failed") and b"nowhere.test" in body
    assert runner.attempts(1)[0].decision == "deny"


def test_when_the_origin_refuses_the_connection_then_502(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as spare:
        port = spare.getsockname()[1]  # closed below: nothing listens there any more
    runner = make_proxy([f"127.0.0.1:{port}"], allow_private=True)
    status, code, body = _get(sock_path, "127.0.0.1", port)
    assert (status, code) == (502, "upstream-failed") and b"refused" in body.lower()
    assert runner.attempts(1)[0].decision == "deny"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_when_ipv6_literal_is_named_then_it_is_reached_and_otherwise_refused(
    make_proxy: Callable[..., ProxyRunner], sock_path: Path, forbidden: OriginServer
) -> None:
    origin = OriginServer("::1")
    try:
        runner = make_proxy([f"[::1]:{origin.port}"], allow_private=True)
        assert _get(sock_path, "[::1]", origin.port, "/v6")[0] == 200
        assert _get(sock_path, "[0:0::1]", origin.port, "/v6b")[0] == 200
        status, code, _ = _get(sock_path, "[::1]", forbidden.port)
        assert (status, code) == (403, "blocked-by-allowlist")
        runner.attempts(3)  # all three finished; the proxy lists them in the order they began
        attempts = runner.proxy.attempts
        assert [a.address for a in attempts] == ["::1", "::1", None]
        assert [s.path for s in origin.requests] == ["/v6", "/v6b"]
    finally:
        origin.stop()
