"""Host names and addresses as the proxy and the allowlist see them: parsed strictly, classified.

Only canonical spellings pass. An IPv4 address is four decimal octets without leading zeros
(`127.0.0.1`); the decimal, octal, hex and short forms that libc's `inet_aton` accepts
(`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`) are refused rather than guessed at, as is any
name whose last label is numeric. IPv6 addresses come in brackets, without a zone. Names are
lower-cased, lose one trailing dot and are compared in their IDNA (punycode) form.
"""

from __future__ import annotations

import ipaddress
import re

import idna

from sandbox.egress.base import IPAddress

__all__ = [
    "HostError",
    "blocked_category",
    "canonical_ip",
    "format_authority",
    "is_metadata",
    "normalise_host",
    "parse_authority",
    "parse_ip",
]


class HostError(ValueError):
    """A host or authority that is malformed or ambiguous; the message says why."""


_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_LABEL = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$")
_PORT = re.compile(r"^[1-9][0-9]{0,4}$")

_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
)

_BLOCKED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.ip_network(net), name)
    for net, name in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "reserved"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "reserved"),
        ("64:ff9b:1::/48", "reserved"),
        ("100::/64", "reserved"),
        ("2001::/23", "reserved"),
        ("2001:db8::/32", "documentation"),
        ("fc00::/7", "private"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "reserved"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def parse_ip(text: str) -> IPAddress | None:
    """The address a canonical literal spells (IPv6 without brackets), or None for a name."""
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def canonical_ip(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 address stands for; any other address unchanged."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_metadata(address: IPAddress) -> bool:
    """True for the well-known cloud instance-metadata endpoints."""
    return canonical_ip(address) in _METADATA


def blocked_category(address: IPAddress) -> str | None:
    """Why an address must not be reached from a sandbox (`loopback`, ...), or None if public."""
    address = canonical_ip(address)
    if address in _METADATA:
        return "cloud metadata"
    embedded: ipaddress.IPv4Address | None = None
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address.sixtofour is not None:
            embedded = address.sixtofour
    if embedded is not None:
        inner = blocked_category(embedded)
        return None if inner is None else f"{inner} (embedded in an IPv6 address)"
    for network, name in _BLOCKED:
        if address.version == network.version and address in network:
            return name
    return None


def normalise_host(raw: str) -> str:
    """A host as compared and resolved: an IP's canonical text or a lower-case IDNA name."""
    if not raw:
        raise HostError("empty host")
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise HostError("unterminated IPv6 literal")
        address = parse_ip(raw[1:-1])
        if not isinstance(address, ipaddress.IPv6Address):
            raise HostError("not a valid IPv6 address in brackets (zones are not allowed)")
        return str(address)
    if ":" in raw:
        raise HostError("IPv6 addresses must be written in brackets")
    address = parse_ip(raw)
    if isinstance(address, ipaddress.IPv4Address):
        return str(address)
    name = raw[:-1] if raw.endswith(".") else raw
    was_ascii = name.isascii()
    if not was_ascii:
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise HostError(f"not a valid internationalised name: {exc}") from None
    name = name.lower()
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise HostError("not a valid host name (letters, digits, '-', '_' in 1-63 char labels)")
    if _NUMERIC_LABEL.match(labels[-1]) or (not was_ascii and parse_ip(name) is not None):
        raise HostError("ambiguous IP address spelling; write IPv4 as four decimal octets")
    for label in labels:
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError:
                raise HostError("invalid punycode label") from None
    return name


def parse_authority(raw: str, default_port: int | None = None) -> tuple[str, int]:
    """Split `host:port` (IPv6 in brackets) and normalise both; the port may default."""
    if any(c in raw for c in "@/\\?# \t"):
        raise HostError("an authority is host:port only (no userinfo, path or spaces)")
    if raw.startswith("["):
        end = raw.find("]")
        if end < 0:
            raise HostError("unterminated IPv6 literal")
        host_part, rest = raw[: end + 1], raw[end + 1 :]
        if rest and not rest.startswith(":"):
            raise HostError("junk after IPv6 literal")
        port_part = rest[1:] if rest else None
    elif ":" in raw:
        host_part, _, port_part = raw.rpartition(":")
    else:
        host_part, port_part = raw, None
    if port_part is None:
        if default_port is None:
            raise HostError("a port is required (host:port)")
        port = default_port
    elif _PORT.match(port_part) and int(port_part) <= 65535:
        port = int(port_part)
    else:
        raise HostError("the port must be a number from 1 to 65535")
    return normalise_host(host_part), port


def format_authority(host: str, port: int) -> str:
    """`host:port` with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
