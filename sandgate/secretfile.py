"""Secrets the service makes for itself once and keeps in its state directory (mode 0600)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["persistent_secret"]


def persistent_secret(path: Path) -> str:
    """The secret stored at `path`, created (256 random bits) on first use; race-free across
    processes: the first writer wins and everyone reads its value."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()
