"""Ordinary clients with nothing but the proxy environment: curl and requests, HTTP and HTTPS."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ._world import OriginServer, ProxyRunner, TLSOriginServer, self_signed
from .conftest import proxy_opener_env


@pytest.fixture
def tls_origin(tmp_path: Path) -> tuple[TLSOriginServer, Path]:
    pytest.importorskip("cryptography")  # to make the certificate
    cert, key = self_signed(tmp_path)
    return TLSOriginServer(cert, key), cert


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_when_curl_uses_the_proxy_variables_then_allowed_urls_work_and_others_get_403(
    make_proxy: Callable[..., ProxyRunner],
    forwarder: Callable[[], int],
    allowed: OriginServer,
    forbidden: OriginServer,
    tls_origin: tuple[TLSOriginServer, Path],
) -> None:
    origin, cert = tls_origin
    try:
        runner = make_proxy(
            [f"127.0.0.1:{allowed.port}", f"127.0.0.1:{origin.port}"], allow_private=True
        )
        env = proxy_opener_env(forwarder())

        def curl(url: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [
                    "curl",
                    "-sS",
                    "--max-time",
                    "10",
                    "--cacert",
                    str(cert),
                    "-w",
                    "|%{http_code}",
                    url,
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=30,
            )

        plain = curl(f"http://127.0.0.1:{allowed.port}/curl")
        assert plain.stdout == "origin:/curl|200"
        tls = curl(f"https://127.0.0.1:{origin.port}/curl-tls")
        assert tls.stdout == "origin:/curl-tls|200"
        denied = curl(f"http://127.0.0.1:{forbidden.port}/")
        assert denied.stdout.endswith("|403") and "no allowlist entry" in denied.stdout
        tunnel = curl(f"https://127.0.0.1:{forbidden.port}/")
        assert tunnel.returncode != 0 and "403" in tunnel.stderr
        assert forbidden.connections == 0
        assert sorted(a.decision for a in runner.attempts(4)) == ["allow", "allow", "deny", "deny"]
    finally:
        origin.stop()


REQUESTS = """
import json, sys, requests
out = []
for url in sys.argv[2:]:
    try:
        r = requests.get(url, timeout=10, verify=sys.argv[1])
        out.append([r.status_code, r.text.strip()])
    except requests.RequestException as e:
        out.append([0, type(e).__name__])
print(json.dumps(out))
"""


def test_when_requests_uses_the_proxy_variables_then_allowed_urls_work_and_others_fail(
    make_proxy: Callable[..., ProxyRunner],
    forwarder: Callable[[], int],
    allowed: OriginServer,
    forbidden: OriginServer,
    tls_origin: tuple[TLSOriginServer, Path],
) -> None:
    pytest.importorskip("requests")
    origin, cert = tls_origin
    try:
        make_proxy([f"127.0.0.1:{allowed.port}", f"127.0.0.1:{origin.port}"], allow_private=True)
        urls = [
            f"http://127.0.0.1:{allowed.port}/req",
            f"https://127.0.0.1:{origin.port}/req-tls",
            f"http://127.0.0.1:{forbidden.port}/",
            f"https://127.0.0.1:{forbidden.port}/",
        ]
        done = subprocess.run(
            [sys.executable, "-c", REQUESTS, str(cert), *urls],
            env=proxy_opener_env(forwarder()),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        got = json.loads(done.stdout)
        assert got[0] == [200, "origin:/req"]
        assert got[1] == [200, "origin:/req-tls"]
        assert got[2] == [403, "no allowlist entry matches " + urls[2][7:-1]]
        assert got[3] == [0, "ProxyError"]
        assert forbidden.connections == 0
    finally:
        origin.stop()
