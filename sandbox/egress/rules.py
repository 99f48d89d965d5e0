"""Egress allowlist entries as written in policies, validated at load and matched per attempt.

An entry is `host:port`, the port always required (1-65535):

    api.example.com:443     exactly this name
    *.example.com:443       any name below example.com, at any depth: a.example.com,
                            a.b.example.com. NOT the bare apex example.com; write both
                            `example.com:443` and `*.example.com:443` to allow both.
    93.184.216.34:80        exactly this IPv4 address (four decimal octets)
    [2001:db8::1]:443       exactly this IPv6 address, in brackets, without a zone

Refused at load: `*` or `*:port` (every host), wildcards with fewer than two labels after
`*.` (`*.com`), a `*` anywhere but as the whole leftmost label, schemes (`https://`), paths,
queries, userinfo (`user@`), whitespace, empty labels, a missing or out-of-range port, and IP
spellings other than the canonical ones (`2130706433`, `0177.0.0.1`). A name entry never matches
an address literal and an address entry never matches a name, even one resolving to it.
Matching is case-insensitive, ignores one trailing dot and compares IDNA (punycode) forms.
Deny entries use the same syntax and win over allow entries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sandbox.egress.address import (
    HostError,
    canonical_ip,
    format_authority,
    normalise_host,
    parse_authority,
    parse_ip,
)
from sandbox.egress.base import IPAddress, Verdict

__all__ = ["Allowlist", "Rule", "parse_rule", "validate_entries"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One parsed entry: an exact name, a wildcard suffix or an address, and a port."""

    text: str
    host: str
    port: int
    wildcard: bool = False
    address: IPAddress | None = None

    def matches(self, host: str, port: int) -> bool:
        """True when a normalised host and port fall under this entry."""
        if port != self.port:
            return False
        if self.address is not None:
            found = parse_ip(host)
            return found is not None and canonical_ip(found) == self.address
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host


def _refusal(entry: str) -> str | None:
    """Why an entry's overall shape is refused, before its host and port are parsed."""
    if not entry:
        return "empty entry"
    if any(c.isspace() for c in entry):
        return "whitespace is not allowed"
    if "://" in entry:
        return "no scheme: write host:port, e.g. api.example.com:443"
    if "@" in entry:
        return "no userinfo (user@ or user:password@)"
    if any(c in entry for c in "/?#\\"):
        return "no path, query or fragment: write host:port"
    if entry == "*" or entry.startswith("*:"):
        return "'*' would allow every host; name the hosts"
    return None


def parse_rule(entry: str) -> Rule:
    """Parse and validate one entry; raise ValueError saying what is wrong with it."""
    problem = _refusal(entry)
    if problem is not None:
        raise ValueError(f"egress entry {entry!r}: {problem}")
    wildcard = entry.startswith("*.")
    body = entry[2:] if wildcard else entry
    if "*" in body:
        raise ValueError(
            f"egress entry {entry!r}: a wildcard must be the whole leftmost label (*.example.com)"
        )
    try:
        host, port = parse_authority(body)
    except HostError as exc:
        raise ValueError(f"egress entry {entry!r}: {exc}") from None
    address = parse_ip(host)
    if wildcard:
        if address is not None:
            raise ValueError(f"egress entry {entry!r}: wildcards apply to names, not addresses")
        if host.count(".") < 1:
            raise ValueError(
                f"egress entry {entry!r}: a wildcard needs at least two labels after '*.' "
                "(*.example.com, not *.com)"
            )
    text = ("*." if wildcard else "") + format_authority(host, port)
    return Rule(
        text=text,
        host=host,
        port=port,
        wildcard=wildcard,
        address=None if address is None else canonical_ip(address),
    )


def validate_entries(entries: Iterable[str]) -> list[str]:
    """Validate a policy's entries; return their canonical spellings or raise ValueError."""
    return [parse_rule(entry).text for entry in entries]


class Allowlist:
    """The real `EgressFilter`: deny entries first, then allow entries, else deny."""

    def __init__(self, allow: Iterable[str], deny: Iterable[str] = ()) -> None:
        self.allow = tuple(parse_rule(entry) for entry in allow)
        self.deny = tuple(parse_rule(entry) for entry in deny)

    def __repr__(self) -> str:
        return (
            f"Allowlist(allow={[r.text for r in self.allow]}, deny={[r.text for r in self.deny]})"
        )

    def check(self, host: str, port: int) -> Verdict:
        """Decide for a host (a name, or an address's text without brackets) and port."""
        address = parse_ip(host)
        host = str(address) if address is not None else normalise_host(host)
        for rule in self.deny:
            if rule.matches(host, port):
                return Verdict(False, f"denied by entry {rule.text}")
        for rule in self.allow:
            if rule.matches(host, port):
                return Verdict(True, f"allowed by entry {rule.text}")
        return Verdict(False, f"no allowlist entry matches {format_authority(host, port)}")

    def names_address(self, address: IPAddress, port: int) -> bool:
        """True when an allow entry (and no deny entry) names exactly this address and port."""
        target = canonical_ip(address)
        if any(r.address == target and r.port == port for r in self.deny):
            return False
        return any(r.address == target and r.port == port for r in self.allow)
