"""HTTP/1.1 request heads for the proxy, parsed with h11, and the answers it writes itself.

A proxied plain-HTTP request must use the absolute form (`GET http://host/path HTTP/1.1`) and
its `Host` header, when present, must name the same host and port. The request is re-serialised
by a second h11 connection (client role) in origin form with hop-by-hop headers and
`Proxy-Authorization` removed, and framed by us, so no header or body framing the client chose
can make the origin see a different request than the one checked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

from sandbox.egress.address import HostError, format_authority, parse_authority

__all__ = ["ClientGone", "ProxyRefusal", "RequestHead", "read_head", "refusal", "upstream_request"]

# Never forwarded: they describe this hop (RFC 9110 7.6.1) or carry the proxy's credentials.
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
        b"host",
        b"content-length",
    }
)


class ClientGone(Exception):
    """The client closed its side before sending a complete request head."""


class ProxyRefusal(Exception):
    """The proxy answers the client itself: status, an X-Proxy-Error code and a reason."""

    def __init__(self, status: int, code: str, reason: str, host: str = "", port: int = 0):
        super().__init__(reason)
        self.status = status
        self.code = code
        self.reason = reason
        self.host = host
        self.port = port


@dataclass
class RequestHead:
    """A parsed request head: the checked target and, for plain HTTP, what to forward."""

    conn: h11.Connection
    request: h11.Request
    host: str
    port: int
    is_connect: bool
    origin_target: bytes = b"/"
    leftover: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def refusal(status: int, code: str, reason: str) -> bytes:
    """A complete `Connection: close` response with a plain-text reason body."""
    text = "".join(c if c.isprintable() else "?" for c in reason)[:1000]
    body = (text + "\n").encode("utf-8", "replace")
    phrase = HTTPStatus(status).phrase
    head = (
        f"HTTP/1.1 {status} {phrase}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"X-Proxy-Error: {code}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


async def read_head(recv: Callable[[], Awaitable[bytes]], max_head_bytes: int) -> RequestHead:
    """Read one request head with `recv` and check its target; raise ProxyRefusal or ClientGone."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_bytes)
    received = 0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint if exc.error_status_hint >= 400 else 400
            raise ProxyRefusal(status, "bad-request", f"malformed request: {exc}") from None
        if isinstance(event, h11.Request):
            return _checked(conn, event)
        if event is h11.NEED_DATA:
            data = await recv()
            received += len(data)
            if not data and received == 0:
                raise ClientGone
            conn.receive_data(data)
            continue
        raise ProxyRefusal(400, "bad-request", "malformed request")  # ConnectionClosed etc.


def _checked(conn: h11.Connection, request: h11.Request) -> RequestHead:
    try:
        target = request.target.decode("ascii")
    except UnicodeDecodeError:
        raise ProxyRefusal(400, "bad-request", "request target is not ASCII") from None
    if request.method == b"CONNECT":
        try:
            host, port = parse_authority(target)
        except HostError as exc:
            raise ProxyRefusal(
                403, "invalid-host", f"CONNECT target: {exc}", *_as_sent(target)
            ) from None
        head = RequestHead(conn, request, host, port, is_connect=True)
        # A CONNECT head is followed at once by its end; a body (or a wait for one) is refused.
        if not isinstance(conn.next_event(), h11.EndOfMessage):
            raise ProxyRefusal(400, "bad-request", "CONNECT must not carry a body")
        head.leftover = conn.trailing_data[0]
        return head
    host, port, origin_target = _absolute_target(target)
    _check_host_header(request, host, port)
    head = RequestHead(conn, request, host, port, is_connect=False, origin_target=origin_target)
    head.headers = _forwarded_headers(request, host, port)
    return head


def _absolute_target(target: str) -> tuple[str, int, bytes]:
    lowered = target[:8].lower()
    if target.startswith("/") or target == "*":
        raise ProxyRefusal(
            400, "bad-request", "a proxy request needs an absolute URL (http://host/path)"
        )
    if lowered.startswith("https://"):
        raise ProxyRefusal(400, "bad-request", "use CONNECT for https:// URLs")
    if not lowered.startswith("http://"):
        raise ProxyRefusal(400, "bad-request", "only http:// URLs and CONNECT are proxied")
    rest = target[7:]
    if "#" in rest:
        raise ProxyRefusal(400, "bad-request", "a request target has no fragment")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, path = rest[:cut], rest[cut:]
    try:
        host, port = parse_authority(authority, default_port=80)
    except HostError as exc:
        raise ProxyRefusal(
            403, "invalid-host", f"request URL: {exc}", *_as_sent(authority)
        ) from None
    if not path.startswith("/"):
        path = "/" + path
    return host, port, path.encode("ascii")


def _as_sent(authority: str) -> tuple[str, int]:
    """A refused authority as the client wrote it, printable and short, for the record."""
    host, _, port = authority.rpartition(":")
    if not (port.isdigit() and len(port) <= 5 and host and not host.endswith(":")):
        host, port = authority, "0"
    text = "".join(c if c.isprintable() and not c.isspace() else "?" for c in host)
    return text[:255], int(port) if int(port) <= 65535 else 0


def _check_host_header(request: h11.Request, host: str, port: int) -> None:
    values = [v for name, v in request.headers if name == b"host"]
    if not values:
        return  # HTTP/1.0 without Host: the target alone decides
    try:
        claimed = parse_authority(values[0].decode("ascii"), default_port=80)
    except (HostError, UnicodeDecodeError):
        raise ProxyRefusal(
            403, "host-mismatch", "the Host header is not a valid host", host, port
        ) from None
    if claimed != (host, port):
        raise ProxyRefusal(
            403,
            "host-mismatch",
            f"the Host header names {format_authority(*claimed)}, "
            f"the request URL {format_authority(host, port)}",
            host,
            port,
        )


def _forwarded_headers(request: h11.Request, host: str, port: int) -> list[tuple[bytes, bytes]]:
    named = {
        token.strip().lower()
        for name, value in request.headers
        if name == b"connection"
        for token in value.split(b",")
    }
    authority = format_authority(host, port)
    if port == 80:
        authority = authority.rpartition(":")[0]
    headers = [(b"Host", authority.encode("ascii"))]
    headers += [
        (raw_name, value)
        for raw_name, value in request.headers.raw_items()
        if raw_name.lower() not in _HOP_BY_HOP and raw_name.lower() not in named
    ]
    lowered = {name for name, _ in request.headers}
    if b"transfer-encoding" in lowered:
        headers.append((b"Transfer-Encoding", b"chunked"))
    elif b"content-length" in lowered:
        length = next(v for n, v in request.headers if n == b"content-length")
        headers.append((b"Content-Length", length))
    headers.append((b"Connection", b"close"))
    return headers


def upstream_request(head: RequestHead) -> tuple[h11.Connection, bytes]:
    """An h11 client connection to the origin and the origin-form head it should receive."""
    conn = h11.Connection(h11.CLIENT)
    data = conn.send(
        h11.Request(method=head.request.method, target=head.origin_target, headers=head.headers)
    )
    return conn, data or b""
