"""Small process and port helpers of the local cluster."""

from __future__ import annotations

import contextlib
import os
import socket

__all__ = ["alive", "free_port"]


def alive(pid: int | None) -> bool:
    """Whether `pid` runs; reaps it first when it is an exited child of this process."""
    if pid is None:
        return False
    try:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def free_port(address: str = "127.0.0.1") -> int:
    """A TCP port on `address` that nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port
