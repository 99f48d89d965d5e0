"""Which worker may reap: leftovers are only the service's when none of its workers is alive.

Every worker holds a shared `flock` on `<state_dir>/workers.lock` for its whole life. A worker
that starts takes the lock exclusively first, without waiting: it gets it only when no sibling
is alive, and only then is whatever sandbox the state directory still lists a leftover of a
crash. A worker uvicorn starts in place of a dead one therefore leaves its siblings' running
sandboxes alone, and two workers starting at once never reap the same directories together.
The kernel drops a dead worker's lock.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["WorkerLease"]


class WorkerLease:
    """One worker's hold on the state directory."""

    def __init__(self, state_dir: Path) -> None:
        self._fd = os.open(state_dir / "workers.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def alone(self) -> bool:
        """True, holding the lock exclusively, when no other worker holds it at all."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def share(self) -> None:
        """Hold the lock shared for the worker's life; waits while another worker reaps."""
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def release(self) -> None:
        """Let go (at shutdown; the kernel does it for a worker that dies)."""
        os.close(self._fd)
