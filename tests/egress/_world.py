"""The outside world of the egress tests: real servers on loopback and the proxy on its own loop."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import ipaddress
import queue
import socket
import ssl
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from sandbox.base import EgressAttempt
from sandbox.egress import Allowlist, EgressCaps, EgressProxy, IPAddress, ResolveError
from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import LiveServer, start_server

T = TypeVar("T")


@dataclass
class Seen:
    """One request an origin received."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body_bytes: int


class OriginServer(ThreadingHTTPServer):
    """A real HTTP server that counts the connections it accepted and records each request."""

    daemon_threads = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.connections = 0
        self.requests: list[Seen] = []
        super().__init__((host, port), _OriginHandler)
        self.port: int = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        self.connections += 1
        return conn, addr

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class _OriginHandler(BaseHTTPRequestHandler):
    server: OriginServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _record(self, body_bytes: int) -> None:
        headers = [(k, v) for k, v in self.headers.items()]
        self.server.requests.append(Seen(self.command, self.path, headers, body_bytes))

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        size = int(query.get("n", ["0"])[0])
        self._record(0)
        body = b"origin:" + self.path.encode() if not size else b""
        self.send_response(200)
        self.send_header("Content-Length", str(size or len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if size:
            block = b"x" * (1 << 20)
            left = size
            with contextlib.suppress(OSError):
                while left:
                    self.wfile.write(block[: min(left, len(block))])
                    left -= min(left, len(block))
        else:
            self.wfile.write(body)

    def do_POST(self) -> None:
        got = 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                got += len(self.rfile.read(size))
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                got += len(chunk)
                left -= len(chunk)
        self._record(got)
        body = str(got).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


class EchoServer:
    """A raw TCP server echoing every byte back: stands in for an HTTPS origin behind CONNECT."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.connections = 0
        self.received = 0
        self.closed = threading.Event()
        self.sock = socket.create_server((host, 0))
        self.port: int = self.sock.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._echo, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            try:
                while data := conn.recv(65536):
                    self.received += len(data)
                    conn.sendall(data)
            except OSError:
                pass
        self.closed.set()

    def stop(self) -> None:
        """Close the listener and wait for the echo threads."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._accepter.join(5)
        for thread in self._threads:
            thread.join(5)


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and tls.test and its key, made with `cryptography`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tls.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("tls.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TLSOriginServer(OriginServer):
    """The same origin over real TLS with a self-signed certificate."""

    def __init__(self, cert: Path, key: Path) -> None:
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        super().__init__()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        return self._context.wrap_socket(conn, server_side=True), addr


class MapResolver:
    """A resolver answering from a table and counting every lookup (an injected DNS)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.calls: list[str] = []

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        if host not in self.table:
            raise ResolveError(f"cannot resolve {host}")
        return [ipaddress.ip_address(a) for a in self.table[host]]


class FlippingResolver(MapResolver):
    """Answers each lookup of a name with the next address of its list: a rebinding DNS."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        answers = self.table[host]
        return [ipaddress.ip_address(answers[min(len(self.calls), len(answers)) - 1])]


class ProxyRunner:
    """An EgressProxy on its own event loop thread, so tests can use blocking clients."""

    def __init__(
        self,
        socket_path: Path,
        allow: list[str],
        *,
        deny: tuple[str, ...] = (),
        egress_filter: Any = None,
        **kwargs: Any,
    ) -> None:
        self.finished: queue.Queue[EgressAttempt] = queue.Queue()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.socket_path = socket_path
        kwargs.setdefault("on_attempt", self.finished.put)
        kwargs.setdefault("caps", EgressCaps())
        chosen = egress_filter or Allowlist(allow, deny)

        async def make() -> EgressProxy:
            proxy = EgressProxy(chosen, **kwargs)
            await proxy.start(socket_path)
            return proxy

        self.proxy = self.call(make())

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the proxy's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def attempts(self, count: int, timeout: float = 10) -> list[EgressAttempt]:
        """The next `count` finished attempts, as handed to the callback."""
        return [self.finished.get(timeout=timeout) for _ in range(count)]

    def tasks_left(self) -> int:
        """Tasks on the proxy's loop other than the one asking."""

        async def count() -> int:
            return len(asyncio.all_tasks() - {asyncio.current_task()})

        return self.call(count())

    def close(self) -> None:
        """aclose() the proxy, then stop the loop and its thread."""
        if self.loop.is_closed():
            return
        try:
            self.call(self.proxy.aclose())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


def unix_exchange(path: Path, data: bytes, *, timeout: float = 10, shut: bool = False) -> bytes:
    """Send raw bytes to the proxy's socket and read until it closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        # The proxy may answer and close before reading everything (a refusal): still read it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
            if shut:
                sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def read_all(sock: socket.socket) -> bytes:
    """Everything until end of stream (or a reset)."""
    parts = []
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            parts.append(chunk)
    return b"".join(parts)


@dataclass
class Answer:
    """A parsed HTTP response."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def parse_answer(raw: bytes) -> Answer:
    """Status, headers (lower-case names) and body of one raw response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Answer(status, headers, body)


def digest(data: bytes) -> str:
    """A short content fingerprint."""
    return hashlib.sha256(data).hexdigest()[:16]


@contextlib.contextmanager
def servers(*items: OriginServer | EchoServer) -> Iterator[None]:
    """Stop the given servers on exit."""
    try:
        yield
    finally:
        for item in items:
            item.stop()


@contextlib.contextmanager
def egress_service(
    tmp_path_factory: Any, label: str, policies: dict[str, str]
) -> Iterator[LiveServer]:
    """The real service on its own state directory with these policy files; loopback egress
    allowed (SANDGATE_EGRESS_ALLOW_PRIVATE), since the test servers live on 127.0.0.1."""
    folder = tmp_path_factory.mktemp(f"{label}-policies")
    for name, text in policies.items():
        (folder / name).write_text(text)
    state = make_state_dir(tmp_path_factory.mktemp(f"{label}-state"))
    env = {
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_POLICY_DIR": str(folder),
        "SANDGATE_EGRESS_ALLOW_PRIVATE": "1",
    }
    with start_server(state, env) as live:
        yield live
