"""Host spellings the proxy accepts, and the address ranges it refuses."""

from __future__ import annotations

import ipaddress

import pytest

from sandbox.egress.address import HostError, blocked_category, normalise_host, parse_authority

NORMAL = [
    ("Example.COM", "example.com"),
    ("example.com.", "example.com"),
    ("bücher.de", "xn--bcher-kva.de"),
    ("127.0.0.1", "127.0.0.1"),
    ("[::1]", "::1"),
    ("[2001:DB8::0:1]", "2001:db8::1"),
]


@pytest.mark.parametrize(("raw", "normal"), NORMAL)
def test_when_host_is_canonical_or_cased_then_it_normalises(raw: str, normal: str) -> None:
    assert normalise_host(raw) == normal


AMBIGUOUS = [
    "2130706433",  # decimal 127.0.0.1
    "0177.0.0.1",  # octal
    "0x7f.0.0.1",  # hex
    "0x7f000001",
    "127.1",  # short form
    "127.0.1",
    "017700000001",
    "1.2.3.4.5",
    "１２７.０.０.１",  # full-width digits that IDNA maps to 127.0.0.1
    "[fe80::1%25eth0]",
    "[fe80::1%eth0]",
    "::1",  # IPv6 without brackets
    "",
    "a..b",
    "exa mple.com",
    "%31%32%37.0.0.1",
]


@pytest.mark.parametrize("raw", AMBIGUOUS)
def test_when_host_is_ambiguous_or_malformed_then_it_is_refused(raw: str) -> None:
    with pytest.raises(HostError):
        normalise_host(raw)


def test_when_authority_has_userinfo_or_path_then_it_is_refused() -> None:
    for raw in ("user:pw@example.com:80", "example.com:80/x", "example.com:99999"):
        with pytest.raises(HostError):
            parse_authority(raw, default_port=80)
    assert parse_authority("[::1]:8080") == ("::1", 8080)
    assert parse_authority("Example.com", default_port=80) == ("example.com", 80)


BLOCKED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("169.254.1.1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("255.255.255.255", "reserved"),
    ("240.0.0.1", "reserved"),
    ("198.18.0.1", "reserved"),
    ("192.0.2.1", "documentation"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fc00::1", "private"),
    ("fd12:3456::1", "private"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fe80::1", "link-local"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::127.0.0.1", "reserved"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata (embedded"),
    ("64:ff9b::a00:1", "private (embedded"),
    ("2002:7f00:1::", "loopback (embedded"),
    ("2002:c0a8:101::", "private (embedded"),
    ("2001:0:4136:e378::1", "reserved"),  # Teredo
    ("2001:db8::1", "documentation"),
]


@pytest.mark.parametrize(("address", "category"), BLOCKED)
def test_when_address_is_not_public_then_it_is_blocked_with_its_category(
    address: str, category: str
) -> None:
    found = blocked_category(ipaddress.ip_address(address))
    assert found is not None and found.startswith(category)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "100.63.255.255", "172.32.0.1", "2606:4700::1111"]
)
def test_when_address_is_public_then_it_is_not_blocked(address: str) -> None:
    assert blocked_category(ipaddress.ip_address(address)) is None
