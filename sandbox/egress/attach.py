"""Egress for one sandbox: start its proxy, and say what the sandbox needs to reach it.

The proxy listens on `<run dir>/egress/proxy.sock`; that directory (with a copy of the
forwarder script) is bound into the sandbox at `/sandgate/egress`, inside the per-execution
input tree (runsc creates missing mount points on the host, and this keeps them out of the
shared image). Before the code starts, the
launcher runs the forwarder on 127.0.0.1:3128 inside the sandbox and waits until it listens;
the code gets `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` pointing at it. A spec without egress gets
nothing: no proxy, no socket, no forwarder, no proxy variables.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

from sandbox.attachment import Attacher, Attachment, Bind
from sandbox.base import ExecutionSpec
from sandbox.egress.base import EgressCaps
from sandbox.egress.proxy import EgressProxy
from sandbox.egress.rules import Allowlist
from sandbox.egress.script import forwarder_argv, forwarder_path, proxy_env

__all__ = ["EGRESS_DIR", "FORWARDER_PORT", "egress_attacher"]

EGRESS_DIR = "/sandgate/egress"
FORWARDER_PORT = 3128
_READY = "/tmp/.sandgate-egress-ready"
_WAIT_STEPS = 300  # x 10 ms: the forwarder starts in about 30 ms


def _setup_step() -> str:
    argv = forwarder_argv(
        "python3",
        f"{EGRESS_DIR}/forwarder.py",
        f"{EGRESS_DIR}/proxy.sock",
        FORWARDER_PORT,
        ready_file=_READY,
    )
    start = shlex.join(argv) + " </dev/null >/dev/null 2>&1 &"
    wait = (
        f"i=0; while [ ! -s {_READY} ]; do i=$((i+1)); "
        f"if [ $i -gt {_WAIT_STEPS} ]; then echo 'sandgate: egress forwarder did not start' >&2; "
        "exit 125; fi; sleep 0.01; done"
    )
    return f"{start} {wait}"


def egress_attacher(*, allow_private: bool) -> Attacher:
    """An attacher that gives specs with egress their own allowlisting proxy."""

    @contextlib.asynccontextmanager
    async def attach(spec: ExecutionSpec, directory: Path) -> AsyncIterator[Attachment]:
        egress = spec.egress
        if egress is None:
            yield Attachment()
            return
        socket_dir = directory / "egress"
        socket_dir.mkdir(mode=0o755)
        shutil.copy(forwarder_path(), socket_dir / "forwarder.py")
        (socket_dir / "forwarder.py").chmod(0o644)
        proxy = EgressProxy(
            Allowlist(egress.allow, egress.deny),
            allow_private=allow_private,
            caps=EgressCaps(
                bytes_per_execution=egress.max_bytes,
                connections_per_execution=egress.max_connections,
            ),
        )
        await proxy.start(socket_dir / "proxy.sock", mode=0o666)  # the sandbox user connects
        try:
            yield Attachment(
                binds=(Bind(socket_dir, EGRESS_DIR, read_only=True),),
                env=proxy_env(FORWARDER_PORT),
                setup=_setup_step(),
                needs_host_uds=True,
                processes=1,
                attempts=lambda: proxy.attempts,
            )
        finally:
            await proxy.aclose()

    return attach
