"""Secrets the service makes for itself once and keeps in its state directory (mode 0600)."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["persistent_secret"]


def persistent_secret(path: Path) -> str:
    """The secret stored at `path`, created (256 random bits) on first use.

    Safe when several workers start at once: the secret is written whole to a private file,
    then hard-linked into place, which fails if another process got there first; nobody ever
    reads a half-written file, and everyone reads the winner's value.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
                handle.flush()
                os.fsync(handle.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink(missing_ok=True)
    return path.read_text().strip()
