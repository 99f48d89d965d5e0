"""The usage store's contract: counters added to and read, never decided on here."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from pydantic import BaseModel, Field

__all__ = ["Usage", "UsageStore"]


class Usage(BaseModel):
    """What one subject used in one UTC day (or what one charge adds)."""

    executions: int = Field(0, ge=0, description="Executions started.")
    cpu_seconds: float = Field(0.0, ge=0, description="CPU-seconds they used (`cpu_ms`).")
    session_hours: float = Field(0.0, ge=0, description="Hours sessions stayed open.")


class UsageStore(abc.ABC):
    """Daily usage per subject (`key:<id>`, `tenant:<name>`) and host CPU per minute.

    Every method is safe to call from several threads and, for stores shared by several
    processes or hosts, from all of them at once: `add` is one atomic increment of every
    subject it names.
    """

    @abc.abstractmethod
    def add(self, subjects: Sequence[str], day: str, usage: Usage) -> None:
        """Add `usage` to each subject's counters of `day` (`YYYY-MM-DD`), atomically."""

    @abc.abstractmethod
    def used(self, subject: str, day: str) -> Usage:
        """What `subject` used on `day` (zeros when nothing)."""

    @abc.abstractmethod
    def add_host_cpu(self, minute: int, cpu_seconds: float) -> None:
        """Add CPU-seconds to the host's counter of `minute` (minutes since the epoch)."""

    @abc.abstractmethod
    def host_cpu(self, since_minute: int) -> float:
        """The host's CPU-seconds from `since_minute` on."""

    @abc.abstractmethod
    def prune(self, before_day: str, before_minute: int) -> None:
        """Drop daily counters before `before_day` and host minutes before `before_minute`."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store."""
