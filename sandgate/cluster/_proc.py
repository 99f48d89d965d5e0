"""Whether a process the cluster started still runs."""

from __future__ import annotations

import contextlib
import os

__all__ = ["alive"]


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
