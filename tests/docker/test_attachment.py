"""The Docker backend's attachment hook (what egress uses): an `Attacher` binds a host Unix
socket into the sandbox (reachable only on the `runsc-uds` runtime, `--host-uds=open`), sets its
environment and a launcher step, and reports attempts; a spec asking for egress on a backend
without an attacher is refused, never run open. Egress itself, through the real proxy, is
tested on both backends in tests/egress.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import os
import shutil
import tempfile
import textwrap
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from sandbox.attachment import Attachment, Bind
from sandbox.base import EgressAttempt, EgressSpec, ExecutionSpec, SandboxUnavailable, Status
from sandbox.docker import DockerBackend
from sandbox.egress.attach import egress_attacher

pytestmark = pytest.mark.docker


@pytest.fixture
def short_state() -> Iterator[Path]:
    """A state directory with a short path: a Unix socket's path is at most 107 bytes."""
    state = Path(tempfile.mkdtemp(prefix="sg-", dir="/tmp"))
    yield state
    shutil.rmtree(state, ignore_errors=True)


ATTEMPT = EgressAttempt(host="example.org", port=443, decision="allow", reason="test")
CODE = textwrap.dedent("""
    import os, socket
    s = socket.socket(socket.AF_UNIX)
    s.connect(os.environ['EGRESS_SOCKET'])
    s.sendall(b'ping')
    print(s.recv(100).decode(), open('/tmp/setup-ran').read())
""")


async def _serve(path: Path) -> asyncio.Server:
    """A real Unix socket server on the host: answers `pong:` and what it was sent."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"pong:" + await reader.read(100))
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(answer, path=str(path))
    os.chmod(path, 0o777)  # the sandbox user (65534) connects to it
    return server


@pytest.mark.parametrize("needs_host_uds", [True, False])
def test_when_attacher_binds_a_socket_then_only_host_uds_reaches_it(
    short_state: Path,
    make_docker_backend: Callable[..., DockerBackend],
    fresh_backend: DockerBackend,
    needs_host_uds: bool,
) -> None:
    seen: list[tuple[str, Path]] = []

    @contextlib.asynccontextmanager
    async def attacher(spec: ExecutionSpec, directory: Path) -> AsyncIterator[Attachment]:
        seen.append((spec.execution_id, directory))
        sockets = directory / "egress"
        sockets.mkdir(mode=0o755)
        server = await _serve(sockets / "proxy.sock")
        try:
            yield Attachment(
                binds=(Bind(sockets, "/sandgate/egress"),),
                env={"EGRESS_SOCKET": "/sandgate/egress/proxy.sock"},
                setup="echo yes > /tmp/setup-ran",
                needs_host_uds=needs_host_uds,
                attempts=lambda: [ATTEMPT],
            )
        finally:
            server.close()
            await server.wait_closed()

    backend = make_docker_backend(short_state, attacher=attacher)
    egress = EgressSpec(allow=("example.org:443",))
    spec = ExecutionSpec(execution_id=uuid.uuid4().hex, code=CODE, egress=egress)
    result = asyncio.run(backend.run(spec))
    if needs_host_uds:
        assert result.status is Status.OK, result.stderr
        assert result.stdout == "pong:ping yes\n\n"
    else:  # the plain runtime: gVisor refuses to connect to a host socket
        assert result.status is Status.ERROR
        assert "ConnectionRefusedError" in result.stderr or "PermissionError" in result.stderr
    assert result.egress == [ATTEMPT]
    assert seen == [(spec.execution_id, short_state / "docker-run" / spec.execution_id)]
    assert backend.leftovers() == []


@pytest.fixture
def origin() -> Iterator[int]:
    """A real HTTP server on 127.0.0.1 playing the outside world; its port."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = b"hello from " + self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


GET = textwrap.dedent("""
    import os, sys, urllib.request
    print(sorted(k for k in os.environ if k.lower().endswith('_proxy')))
    try:
        print(urllib.request.urlopen(sys.stdin.read(), timeout=10).read().decode())
    except OSError as e:
        print('refused', e)
""")


@pytest.mark.parametrize(
    ("allowed", "expected"), [(True, "hello from /x"), (False, "refused HTTP Error 403")]
)
def test_when_real_egress_attacher_then_only_the_allowlist_is_reached(
    short_state: Path,
    make_docker_backend: Callable[..., DockerBackend],
    fresh_backend: DockerBackend,
    origin: int,
    allowed: bool,
    expected: str,
) -> None:
    backend = make_docker_backend(short_state, attacher=egress_attacher(allow_private=True))
    allow = f"127.0.0.1:{origin}" if allowed else "127.0.0.1:9"
    spec = ExecutionSpec(
        execution_id=uuid.uuid4().hex,
        code=GET,
        stdin=f"http://127.0.0.1:{origin}/x",
        egress=EgressSpec(allow=(allow,)),
    )
    result = asyncio.run(backend.run(spec))
    assert result.status is Status.OK, result.stderr
    names, answer = result.stdout.splitlines()[:2]
    assert "HTTP_PROXY" in names and answer.startswith(expected)
    assert [(a.port, a.decision) for a in result.egress] == [
        (origin, "allow" if allowed else "deny")
    ]
    no_egress = ExecutionSpec(execution_id=uuid.uuid4().hex, code=GET, stdin=spec.stdin)
    plain = asyncio.run(backend.run(no_egress))
    assert plain.stdout.splitlines()[0] == "[]" and plain.egress == []
    assert plain.stdout.splitlines()[1].startswith("refused")
    assert backend.leftovers() == []


def test_when_egress_asked_without_attacher_then_refused(fresh_backend: DockerBackend) -> None:
    egress = EgressSpec(allow=("a.org:443",))
    spec = ExecutionSpec(execution_id=uuid.uuid4().hex, code="print(1)", egress=egress)
    with pytest.raises(SandboxUnavailable, match="egress"):
        asyncio.run(fresh_backend.run(spec))
    assert fresh_backend.leftovers() == []
