"""A package index and an npm registry as one static directory served over HTTP on 127.0.0.1.

    simple/sgdemo/index.html            PEP 503: a link to the wheel
    files/sgdemo-1.0-py3-none-any.whl   a minimal, valid wheel (`import sgdemo; sgdemo.VALUE`)
    sgdemo-js                           npm's package document (packument) of `sgdemo-js`
    tarballs/sgdemo-js-1.0.0.tgz        its tarball (`require('sgdemo-js').VALUE`)

Nothing is generated per request: pip and npm get plain files, as from any static web server.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["NPM_PACKAGE", "WHEEL", "StaticRegistry", "demo_wheel"]

WHEEL = "sgdemo-1.0-py3-none-any.whl"
NPM_PACKAGE = "sgdemo-js"


def demo_wheel() -> bytes:
    """A minimal, valid wheel of `sgdemo` 1.0 (its module holds `VALUE = 1`)."""
    buf = io.BytesIO()
    files = {
        "sgdemo/__init__.py": b"VALUE = 1\n",
        "sgdemo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: sgdemo\nVersion: 1.0\n",
        "sgdemo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = []
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{name},sha256={digest.decode()},{len(data)}")
        record.append("sgdemo-1.0.dist-info/RECORD,,")
        zf.writestr("sgdemo-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return buf.getvalue()


def _npm_tarball() -> bytes:
    buf = io.BytesIO()
    files = {
        "package/package.json": json.dumps(
            {"name": NPM_PACKAGE, "version": "1.0.0", "main": "index.js"}
        ).encode(),
        "package/index.js": b"exports.VALUE = 7;\n",
    }
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Handler(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.paths.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticRegistry:
    """The directory above, written under `root` and served on 127.0.0.1; `paths` lists what
    was fetched."""

    def __init__(self, root: Path) -> None:
        self.server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(_Handler, directory=str(root))
        )
        self.server.daemon_threads = True
        self.server.paths = []  # type: ignore[attr-defined]
        self.port: int = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        (root / "simple" / "sgdemo").mkdir(parents=True)
        (root / "files").mkdir()
        (root / "files" / WHEEL).write_bytes(demo_wheel())
        (root / "simple" / "sgdemo" / "index.html").write_text(
            f'<html><body><a href="/files/{WHEEL}">{WHEEL}</a></body></html>'
        )
        tarball = _npm_tarball()
        (root / "tarballs").mkdir()
        (root / "tarballs" / f"{NPM_PACKAGE}-1.0.0.tgz").write_bytes(tarball)
        dist = {
            "tarball": f"{self.url}/tarballs/{NPM_PACKAGE}-1.0.0.tgz",
            "shasum": hashlib.sha1(tarball).hexdigest(),  # noqa: S324 - npm's own field
            "integrity": "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode(),
        }
        packument = {
            "name": NPM_PACKAGE,
            "dist-tags": {"latest": "1.0.0"},
            "versions": {"1.0.0": {"name": NPM_PACKAGE, "version": "1.0.0", "dist": dist}},
        }
        (root / NPM_PACKAGE).write_text(json.dumps(packument))
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def paths(self) -> list[str]:
        """Request paths served so far, in order."""
        paths: list[str] = self.server.paths  # type: ignore[attr-defined]
        return paths

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
