"""Egress from real gVisor sandboxes through the real service, to real servers on 127.0.0.1.

Two servers play the outside world: `allowed` (named exactly, `127.0.0.1:PORT`, by the test
policies) and `forbidden` (named by none). The service runs with SANDGATE_EGRESS_ALLOW_PRIVATE
on, since both live on loopback; each test asserts what reached each server, what the sandboxed
program saw, and what the execution result records.
"""

from __future__ import annotations

import http.server
import socketserver
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import psutil
import pytest

from tests.egress._registry import WHEEL, demo_wheel
from tests.egress._world import egress_service
from tests.helpers import LiveServer

pytestmark = pytest.mark.sandbox


class World:
    """One HTTP server on 127.0.0.1 that counts connections and keeps request headers."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        self.connections = 0
        self.requests: list[dict[str, str]] = []
        self.uploaded = 0
        world = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                world.requests.append(dict(self.headers))
                body = (files or {}).get(self.path)
                if body is None:
                    body = b"hello from " + self.path.encode()
                self.send_response(200)
                kind = "text/html" if self.path.startswith("/simple") else "text/plain"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                world.uploaded += len(self.rfile.read(length))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

            def verify_request(self, request: Any, client_address: Any) -> bool:
                world.connections += 1
                return True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def worlds() -> Iterator[tuple[World, World]]:
    wheel = demo_wheel()
    index = f'<html><body><a href="/files/{WHEEL}">{WHEEL}</a></body></html>'.encode()
    allowed = World({"/simple/sgdemo/": index, f"/files/{WHEEL}": wheel})
    forbidden = World()
    yield allowed, forbidden
    allowed.close()
    forbidden.close()


@pytest.fixture(scope="module")
def egress_server(
    tmp_path_factory: pytest.TempPathFactory, worlds: tuple[World, World], images: Any
) -> Iterator[LiveServer]:
    allowed, _forbidden = worlds
    base = "extends: default\nlimits: {timeout_s: 60, cpu_s: 60, memory_mb: 512}\n"
    policies = {
        "default.yaml": "description: no egress\n",
        "open.yaml": base + f'network: {{egress: ["127.0.0.1:{allowed.port}"], max_connections: 20,'
        f" max_bytes: 1048576}}\n",
        "by-name.yaml": base + f'network: {{egress: ["localhost:{allowed.port}"]}}\n',
        "metadata.yaml": base + 'network: {egress: ["169.254.169.254:80"]}\n',
        "bindings.yaml": "default: default\n"
        "keys: {env: open, by-name-agent: by-name, metadata-agent: metadata}\n",
    }
    with egress_service(tmp_path_factory, "egress", policies) as live:
        yield live
        pid = live.process.pid
        sockets = [
            c
            for c in psutil.Process(pid).net_connections(kind="unix")
            if str(live.state_dir) in (c.laddr or "")
        ]
        assert sockets == [], f"egress sockets left open: {sockets}"


def run(live: LiveServer, code: str, key: str | None = None, **body: Any) -> dict[str, Any]:
    with live.client(key=key) as client:
        response = client.post("/execute", json={"code": textwrap.dedent(code), **body})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def audited_egress(live: LiveServer, request_id: str) -> Any:
    """The egress attempts the audit record of one execution holds."""
    with live.client() as client:
        page = client.get("/audit/records", params={"action": "execute", "limit": 50}).json()
    (record,) = [r for r in page["records"] if r["request_id"] == request_id]
    return record["details"]["egress"]


def test_when_http_to_the_allowlisted_host_then_it_arrives(
    egress_server: LiveServer, worlds: tuple[World, World]
) -> None:
    allowed, forbidden = worlds
    before = allowed.connections
    body = run(
        egress_server,
        f"""
        import urllib.request
        print(urllib.request.urlopen('http://127.0.0.1:{allowed.port}/hi', timeout=10).read())
    """,
    )
    assert body["stdout"] == "b'hello from /hi'\n", body["stderr"]
    assert allowed.connections == before + 1 and forbidden.connections == 0
    (attempt,) = body["egress"]
    assert (attempt["host"], attempt["port"], attempt["decision"]) == (
        "127.0.0.1",
        allowed.port,
        "allow",
    )
    assert attempt["bytes_up"] > 0 and attempt["bytes_down"] > 0
    assert audited_egress(egress_server, body["request_id"]) == body["egress"]
    assert body["policy"]["name"] == "open"


def test_when_connect_tunnel_to_the_allowlisted_host_then_bytes_flow(
    egress_server: LiveServer, worlds: tuple[World, World]
) -> None:
    allowed, _ = worlds
    body = run(
        egress_server,
        f"""
        import http.client
        conn = http.client.HTTPConnection('127.0.0.1', 3128, timeout=10)
        conn.set_tunnel('127.0.0.1', {allowed.port})   # CONNECT, as HTTPS clients do
        conn.request('GET', '/tunnelled')
        print(conn.getresponse().read())
    """,
    )
    assert body["stdout"] == "b'hello from /tunnelled'\n", body["stderr"]
    assert body["egress"][0]["decision"] == "allow"


@pytest.mark.parametrize(
    ("how", "target"),
    [
        ("connect", "forbidden"),
        ("get", "forbidden"),
        ("get-decimal", "2130706433"),
        ("get-octal", "0177.0.0.1"),
        ("get-ipv6", "[::1]"),
    ],
)
def test_when_target_is_not_allowlisted_then_403_and_nothing_arrives(
    egress_server: LiveServer, worlds: tuple[World, World], how: str, target: str
) -> None:
    allowed, forbidden = worlds
    port = forbidden.port if target == "forbidden" else allowed.port
    host = "127.0.0.1" if target == "forbidden" else target
    if how == "connect":
        code = f"""
            import http.client
            conn = http.client.HTTPConnection('127.0.0.1', 3128, timeout=10)
            conn.set_tunnel('{host}', {port})
            try:
                conn.request('GET', '/'); print('REACHED')
            except OSError as e:
                print('refused', e)
        """
    else:
        code = f"""
            import urllib.request, urllib.error
            try:
                urllib.request.urlopen('http://{host}:{port}/', timeout=10); print('REACHED')
            except urllib.error.HTTPError as e:
                print('refused', e.code, e.headers.get('X-Proxy-Error'), e.read().decode())
        """
    before = allowed.connections
    body = run(egress_server, code)
    assert body["stdout"].startswith("refused"), (body["stdout"], body["stderr"])
    assert "403" in body["stdout"]
    assert forbidden.connections == 0 and allowed.connections == before
    assert [a["decision"] for a in body["egress"]] == ["deny"]
    assert audited_egress(egress_server, body["request_id"]) == body["egress"]


def test_when_host_header_disagrees_with_the_target_then_refused(
    egress_server: LiveServer, worlds: tuple[World, World]
) -> None:
    allowed, forbidden = worlds
    body = run(
        egress_server,
        f"""
        import socket
        s = socket.create_connection(('127.0.0.1', 3128), timeout=10)
        s.sendall(b'GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\\r\\n'
                  b'Host: 127.0.0.1:{forbidden.port}\\r\\n\\r\\n')
        print(s.recv(200).split(b'\\r\\n')[0])
    """,
    )
    assert "403" in body["stdout"], body
    assert forbidden.connections == 0


def test_when_proxy_credentials_are_sent_then_they_never_reach_the_origin(
    egress_server: LiveServer, worlds: tuple[World, World]
) -> None:
    allowed, _ = worlds
    body = run(
        egress_server,
        f"""
        import urllib.request
        # Assembled at run time: code screening blocks credentials written into URLs.
        word = 'hun' + 'ter2'
        proxy_url = 'http://agent' + chr(58) + word + chr(64) + '127.0.0.1:3128'
        proxy = urllib.request.ProxyHandler({{'http': proxy_url}})
        opener = urllib.request.build_opener(proxy)
        print(opener.open('http://127.0.0.1:{allowed.port}/creds', timeout=10).read())
    """,
    )
    assert "hello from /creds" in body["stdout"], body
    seen = next(r for r in reversed(allowed.requests) if r)
    assert not any(name.lower() == "proxy-authorization" for name in seen)


def test_when_an_allowlisted_name_resolves_to_loopback_then_refused(
    egress_server: LiveServer, worlds: tuple[World, World]
) -> None:
    allowed, _ = worlds
    before = allowed.connections
    body = run(
        egress_server,
        f"""
        import urllib.request, urllib.error
        try:
            urllib.request.urlopen('http://localhost:{allowed.port}/', timeout=10); print('REACHED')
        except urllib.error.HTTPError as e:
            print('refused', e.code, e.read().decode())
    """,
        key=egress_server.new_key("by-name-agent"),
    )
    assert body["policy"]["name"] == "by-name"
    assert body["stdout"].startswith("refused 403"), body
    assert allowed.connections == before
    assert "loopback" in body["egress"][0]["reason"]


def test_when_the_metadata_address_is_named_then_still_refused(
    egress_server: LiveServer,
) -> None:
    body = run(
        egress_server,
        """
        import urllib.request, urllib.error
        try:
            urllib.request.urlopen('http://169.254.169.254/latest/meta-data/', timeout=10)
            print('REACHED')
        except urllib.error.HTTPError as e:
            print('refused', e.code)
    """,
        key=egress_server.new_key("metadata-agent"),
    )
    assert body["stdout"].startswith("refused 403"), body
    assert body["egress"][0]["decision"] == "deny"


def test_when_code_bypasses_the_proxy_then_no_route_and_no_dns(
    egress_server: LiveServer, worlds: tuple[World, World]
) -> None:
    allowed, _ = worlds
    before = allowed.connections
    body = run(
        egress_server,
        f"""
        import socket
        for target in [('127.0.0.1', {allowed.port}), ('93.184.216.34', 80)]:
            try:
                socket.create_connection(target, timeout=3); print('CONNECTED')
            except OSError as e:
                print('no', type(e).__name__)
        try:
            socket.getaddrinfo('pypi.org', 443); print('RESOLVED')
        except OSError as e:
            print('no dns')
    """,
    )
    assert "CONNECTED" not in body["stdout"] and "RESOLVED" not in body["stdout"], body
    assert allowed.connections == before


def test_when_upload_passes_the_byte_cap_then_cut_and_recorded(
    egress_server: LiveServer, worlds: tuple[World, World]
) -> None:
    allowed, _ = worlds
    body = run(
        egress_server,
        f"""
        import urllib.request
        data = b'x' * (3 << 20)
        try:
            urllib.request.urlopen(
                urllib.request.Request('http://127.0.0.1:{allowed.port}/up', data=data),
                timeout=20)
            print('UPLOADED')
        except Exception as e:
            print('cut', type(e).__name__)
    """,
    )
    assert body["stdout"].startswith("cut"), body
    assert allowed.uploaded < 3 << 20
    attempt = body["egress"][0]
    assert attempt["bytes_up"] <= 1 << 20 and "cap" in attempt["reason"]


def test_when_code_opens_many_connections_then_the_connection_cap_holds(
    egress_server: LiveServer, worlds: tuple[World, World]
) -> None:
    allowed, _ = worlds
    body = run(
        egress_server,
        f"""
        import urllib.request
        ok = refused = 0
        for _ in range(40):
            try:
                urllib.request.urlopen('http://127.0.0.1:{allowed.port}/n', timeout=10).read()
                ok += 1
            except OSError:  # a 403, or the connection closed at the cap
                refused += 1
        print(ok, refused)
    """,
    )
    assert body["status"] == "ok", (body["stderr"], body["egress"][-3:])
    ok, refused = map(int, body["stdout"].split())
    assert (ok, refused) == (20, 20), body


def test_when_pip_downloads_from_an_allowed_index_then_it_works(
    egress_server: LiveServer, worlds: tuple[World, World]
) -> None:
    allowed, _ = worlds
    body = run(
        egress_server,
        f"""
        import subprocess, sys, os
        done = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps',
                               '--no-cache-dir', '--disable-pip-version-check', '-d', 'dl',
                               '--index-url', 'http://127.0.0.1:{allowed.port}/simple/',
                               '--trusted-host', '127.0.0.1', 'sgdemo'],
                              capture_output=True, text=True)
        print(done.returncode, sorted(os.listdir('dl')) if os.path.isdir('dl') else [])
        print(done.stderr[-400:], file=sys.stderr)
    """,
    )
    assert body["stdout"].strip() == f"0 ['{WHEEL}']", body["stderr"]


def test_when_policy_has_no_egress_then_pip_fails_and_no_proxy_exists(
    egress_server: LiveServer, worlds: tuple[World, World]
) -> None:
    allowed, _ = worlds
    before = allowed.connections
    key = egress_server.new_key("plain-agent")  # bound to nothing: the no-egress default
    body = run(
        egress_server,
        f"""
        import os, socket, subprocess, sys
        print(sorted(k for k in os.environ if 'proxy' in k.lower()),
              os.path.exists('/sandgate/egress'))
        try:
            socket.create_connection(('127.0.0.1', 3128), timeout=3); print('PROXY')
        except OSError:
            print('no proxy')
        done = subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps',
                               '--no-cache-dir', '-d', 'dl', '--retries', '0', '--timeout', '3',
                               '--index-url', 'http://127.0.0.1:{allowed.port}/simple/',
                               'sgdemo'], capture_output=True, text=True)
        print(done.returncode)
    """,
        key=key,
    )
    lines = body["stdout"].splitlines()
    assert body["policy"]["name"] == "default"
    assert lines[:2] == ["[] False", "no proxy"], body
    assert lines[2] != "0" and body["egress"] == []
    assert allowed.connections == before
