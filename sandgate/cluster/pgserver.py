"""A private PostgreSQL server from Debian's binaries: for the audit tests and benchmark, and the
database of `sandgate cluster up`.

`initdb` refuses to run as root, so as root the data directory belongs to the `postgres`
user and the server runs as it; otherwise as the current user. The server listens on
127.0.0.1 on a free port and on a Unix socket in its own directory, with trust auth (it is
reachable only from this host, and only for the tests' lifetime).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from sandgate.cluster._proc import free_port

__all__ = ["PgMissing", "PgServer", "find_bindir"]

SETUP_HINT = "run .ci/postgres (as root) to install Debian's postgresql package"
PORT_FILE = "port"


class PgMissing(RuntimeError):
    """PostgreSQL's server binaries are not installed."""


def find_bindir(root: Path = Path("/usr/lib/postgresql"), use_path: bool = True) -> Path:
    """The directory holding initdb and pg_ctl (the newest Debian version, else PATH)."""
    candidates = sorted(
        root.glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    on_path = shutil.which("pg_ctl") if use_path else None
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    raise PgMissing(f"PostgreSQL server binaries (initdb, pg_ctl) not found: {SETUP_HINT}")


class PgServer:
    """One PostgreSQL cluster: `start()` returns a DSN, `destroy()` removes it all.

    In a temporary directory by default (throw-away); in `root` when given, where a later
    `PgServer(root=...)` finds it again, on the same port, to start or stop it."""

    def __init__(self, database: str = "sandgate_test", root: Path | None = None) -> None:
        self.bindir = find_bindir()
        self.database = database
        if root is None:
            self.root = Path(tempfile.mkdtemp(prefix="sandgate-pg-"))
        else:
            self.root = root
            root.mkdir(parents=True, exist_ok=True)
        self.data = self.root / "data"
        port_file = self.root / PORT_FILE
        self.port = int(port_file.read_text()) if port_file.exists() else free_port()
        port_file.write_text(str(self.port))
        self._as_root = os.geteuid() == 0
        if self._as_root:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PgMissing(f"no `postgres` system user: {SETUP_HINT}") from exc
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.root.chmod(0o700)

    @property
    def dsn(self) -> str:
        """The DSN of the test database."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        user: dict[str, Any] = {}
        if self._as_root:
            user = {"user": "postgres", "group": "postgres", "extra_groups": []}
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **user,
        )
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed: {result.stderr.strip()}\n{tail}")

    def initdb(self) -> None:
        """Create the cluster (once)."""
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-instructions", "--no-sync",
        )  # fmt: skip

    def start(self) -> str:
        """Start the server (creating the cluster and database the first time); its DSN."""
        if not self.data.exists():
            self.initdb()
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")  # fmt: skip
        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if exists is None:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        return self.dsn

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`immediate` is a crash, as far as clients can tell)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def running(self) -> bool:
        """Whether the server accepts connections."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def destroy(self) -> None:
        """Stop the server if it runs and delete the cluster."""
        if (self.data / "postmaster.pid").exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
