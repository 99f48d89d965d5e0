"""A spinner on the terminal while a run is silent, and nothing at all when not on a terminal."""

from __future__ import annotations

import threading
from typing import TextIO

from rich.console import Console
from rich.status import Status

__all__ = ["Spinner"]


class Spinner:
    """Shows `message` with a spinner after `delay` seconds without output, on a terminal only.

    Call `output()` before writing anything: it clears the spinner and starts the wait again.
    """

    def __init__(self, stream: TextIO, message: str, delay: float = 1.0) -> None:
        self.enabled = stream.isatty()
        self._console = Console(file=stream)
        self._message, self._delay = message, delay
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._status: Status | None = None

    def __enter__(self) -> Spinner:
        self.output()
        return self

    def __exit__(self, *_exc: object) -> None:
        with self._lock:
            self._clear()

    def output(self) -> None:
        """Output is about to be written: hide the spinner, show it again after a silence."""
        if not self.enabled:
            return
        with self._lock:
            self._clear()
            self._timer = threading.Timer(self._delay, self._show)
            self._timer.daemon = True
            self._timer.start()

    def _show(self) -> None:
        with self._lock:
            if self._timer is threading.current_thread():  # not cleared or re-armed since
                self._status = self._console.status(self._message)
                self._status.start()

    def _clear(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._status is not None:
            self._status.stop()
            self._status = None
