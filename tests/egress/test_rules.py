"""Allowlist entries: which shapes load, which are refused and why, and what each matches."""

from __future__ import annotations

import ipaddress

import pytest

from sandbox.egress.rules import Allowlist, parse_rule, validate_entries

ACCEPTED = [
    ("api.example.com:443", "api.example.com:443"),
    ("API.Example.COM:443", "api.example.com:443"),
    ("example.com.:80", "example.com:80"),
    ("*.example.com:443", "*.example.com:443"),
    ("*.EXAMPLE.com.:443", "*.example.com:443"),
    ("bücher.de:443", "xn--bcher-kva.de:443"),
    ("*.bücher.de:443", "*.xn--bcher-kva.de:443"),
    ("xn--bcher-kva.de:443", "xn--bcher-kva.de:443"),
    ("93.184.216.34:80", "93.184.216.34:80"),
    ("127.0.0.1:8080", "127.0.0.1:8080"),
    ("[2001:db8::1]:443", "[2001:db8::1]:443"),
    ("[2001:DB8:0::1]:443", "[2001:db8::1]:443"),
    ("localhost:65535", "localhost:65535"),
    ("files.pythonhosted.org:1", "files.pythonhosted.org:1"),
    ("_svc.example.com:443", "_svc.example.com:443"),
]


@pytest.mark.parametrize(("entry", "canonical"), ACCEPTED)
def test_when_entry_is_well_formed_then_it_loads_in_canonical_form(
    entry: str, canonical: str
) -> None:
    assert parse_rule(entry).text == canonical


REJECTED = [
    ("", "empty"),
    ("*", "every host"),
    ("*:443", "every host"),
    ("*.com:443", "two labels"),
    ("*.localhost:443", "two labels"),
    ("*.*.example.com:443", "leftmost label"),
    ("a.*.example.com:443", "leftmost label"),
    ("api*.example.com:443", "leftmost label"),
    ("*example.com:443", "leftmost label"),
    ("https://api.example.com:443", "no scheme"),
    ("http://api.example.com", "no scheme"),
    ("api.example.com:443/path", "no path"),
    ("api.example.com:443?q", "no path"),
    ("api.example.com:443#f", "no path"),
    ("user@api.example.com:443", "userinfo"),
    ("user:pw@api.example.com:443", "userinfo"),
    ("api.example.com", "port is required"),
    ("api.example.com:", "port must be"),
    ("api.example.com:0", "port must be"),
    ("api.example.com:65536", "port must be"),
    ("api.example.com:080", "port must be"),
    ("api.example.com:+443", "port must be"),
    ("api.example.com:https", "port must be"),
    ("api..example.com:443", "not a valid host name"),
    (".example.com:443", "not a valid host name"),
    ("-bad.example.com:443", "not a valid host name"),
    ("ex ample.com:443", "whitespace"),
    (" api.example.com:443", "whitespace"),
    ("2001:db8::1:443", "brackets"),
    ("[2001:db8::1]", "port is required"),
    ("[fe80::1%eth0]:443", "zones"),
    ("[2001:db8::1:443", "unterminated"),
    ("2130706433:80", "ambiguous IP"),
    ("0177.0.0.1:80", "ambiguous IP"),
    ("0x7f.0.0.1:80", "ambiguous IP"),
    ("127.1:80", "ambiguous IP"),
    ("*.1.2.3:80", "ambiguous IP"),
    ("example.123:80", "ambiguous IP"),
    ("１２７.０.０.１:80", "ambiguous IP"),
    ("a\\b.example.com:443", "no path"),
    ("xn--zz.example.com:443", "punycode"),
    ("a" * 64 + ".example.com:443", "not a valid host name"),
]


@pytest.mark.parametrize(("entry", "why"), REJECTED)
def test_when_entry_is_malformed_or_too_broad_then_load_fails_saying_why(
    entry: str, why: str
) -> None:
    with pytest.raises(ValueError, match=why) as caught:
        parse_rule(entry)
    assert repr(entry) in str(caught.value)


def test_when_a_policy_has_one_bad_entry_then_validation_rejects_the_list() -> None:
    with pytest.raises(ValueError, match=r"\*\.com"):
        validate_entries(["api.example.com:443", "*.com:443"])
    assert validate_entries(["API.example.com:443", "*.b.c:1"]) == [
        "api.example.com:443",
        "*.b.c:1",
    ]


MATCHES = [
    # (entries, host as sent, port, allowed)
    (["api.example.com:443"], "api.example.com", 443, True),
    (["api.example.com:443"], "API.EXAMPLE.COM.", 443, True),
    (["api.example.com:443"], "api.example.com", 80, False),
    (["api.example.com:443"], "x.api.example.com", 443, False),
    (["api.example.com:443"], "api.example.com.evil.net", 443, False),
    (["*.example.com:443"], "a.example.com", 443, True),
    (["*.example.com:443"], "a.b.example.com", 443, True),
    (["*.example.com:443"], "example.com", 443, False),  # the bare apex is not included
    (["*.example.com:443", "example.com:443"], "example.com", 443, True),
    (["*.example.com:443"], "badexample.com", 443, False),
    (["*.example.com:443"], "example.com.evil.net", 443, False),
    (["bücher.de:443"], "BÜCHER.de", 443, True),
    (["bücher.de:443"], "xn--bcher-kva.de", 443, True),
    (["127.0.0.1:80"], "127.0.0.1", 80, True),
    (["127.0.0.1:80"], "localhost", 80, False),  # an address entry never matches a name
    (["localhost:80"], "127.0.0.1", 80, False),  # and a name entry never an address
    (["[2001:db8::1]:443"], "2001:db8:0:0::1", 443, True),
    (["127.0.0.1:80"], "::ffff:127.0.0.1", 80, True),  # the same address, IPv4-mapped
]


@pytest.mark.parametrize(("entries", "host", "port", "allowed"), MATCHES)
def test_when_host_is_checked_then_only_entries_that_name_it_allow_it(
    entries: list[str], host: str, port: int, allowed: bool
) -> None:
    verdict = Allowlist(entries).check(host, port)
    assert verdict.allowed is allowed
    assert ("allowed by" in verdict.reason) is allowed


def test_when_deny_and_allow_both_match_then_deny_wins() -> None:
    rules = Allowlist(["*.example.com:443"], deny=["secret.example.com:443"])
    denied = rules.check("secret.example.com", 443)
    assert not denied.allowed and "denied by entry secret.example.com:443" in denied.reason
    assert rules.check("public.example.com", 443).allowed


def test_when_no_entries_then_everything_is_denied() -> None:
    verdict = Allowlist([]).check("example.com", 443)
    assert not verdict.allowed and "no allowlist entry" in verdict.reason


def test_when_asked_about_an_address_then_only_an_exact_address_entry_names_it() -> None:
    rules = Allowlist(["localhost:8080", "127.0.0.1:9090"], deny=["127.0.0.2:9090"])
    assert rules.names_address(ipaddress.ip_address("127.0.0.1"), 9090)
    assert rules.names_address(ipaddress.ip_address("::ffff:127.0.0.1"), 9090)
    assert not rules.names_address(ipaddress.ip_address("127.0.0.1"), 8080)
    assert not rules.names_address(ipaddress.ip_address("127.0.0.2"), 9090)
