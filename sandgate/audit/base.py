"""The audit log's contract: what the service hands in, what comes back, and the store interface.

The service builds an `AuditEvent` per decision and calls `AuditStore.append`, which returns
the sealed `AuditRecord` only once it is durably committed. The store assigns `seq`, `id`,
`time`, `prev_hash` and `hash` (see `sandgate.audit.chain` for the scheme).

Callers pass key *ids* and names, never an API key; the store refuses any event whose
serialisation contains something shaped like a key (`sg_` + 20 or more key characters), and
any event larger than `MAX_EVENT_BYTES`.

Every error is an `AuditError` (see `sandgate.audit.errors`); `AuditUnavailable` means the
database cannot be used, and the service must fail closed (503).

The interface is synchronous: each call is one short transaction, and the service runs it in
its thread pool (`anyio.to_thread.run_sync`). Stores are safe to share between threads.
"""

from __future__ import annotations

import abc
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from types import TracebackType
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, field_validator

from sandgate.audit.errors import AuditCorrupt, AuditError, AuditRejected, AuditUnavailable

__all__ = [
    "MAX_EVENT_BYTES",
    "Action",
    "AuditCorrupt",
    "AuditError",
    "AuditEvent",
    "AuditRecord",
    "AuditRejected",
    "AuditStore",
    "AuditUnavailable",
    "Checkpoint",
    "CheckpointReason",
    "Head",
    "PruneResult",
    "RecordFilter",
    "VerifyReport",
]

MAX_EVENT_BYTES = 256 * 1024
HEX64 = r"^[0-9a-f]{64}$"
TIME_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$"
CheckpointReason = Literal["periodic", "manual", "prune"]


class Action(StrEnum):
    """The actions the service records; `AuditEvent.action` also accepts new dotted names."""

    EXECUTE = "execute"
    SCREEN = "screen"
    AUTH_DENIED = "auth.denied"
    RATE_LIMITED = "rate_limited"
    POLICY_REFUSED = "policy.refused"
    POLICY_LOAD = "policy.load"
    POLICY_REJECTED = "policy.rejected"
    KEY_CREATE = "key.create"
    KEY_REVOKE = "key.revoke"
    EGRESS = "egress"
    WEBHOOK = "webhook"


class AuditEvent(BaseModel):
    """One decision, as the service hands it to the store (no seq, time or hashes yet)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str = Field(
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$", max_length=64, description="What happened."
    )
    verdict: str | None = Field(
        None, max_length=64, description="The decision: allow, redact, block, deny, ok, error."
    )
    status: str | None = Field(
        None, max_length=64, description="Execution status or HTTP status of the answer."
    )
    tenant: str | None = Field(None, max_length=256, description="The key's tenant.")
    key_id: str | None = Field(None, max_length=256, description="The key's id, never the key.")
    key_name: str | None = Field(None, max_length=256, description="The key's display name.")
    policy_name: str | None = Field(None, max_length=256, description="Policy applied.")
    policy_hash: str | None = Field(None, max_length=128, description="Hash of that policy.")
    request_id: str | None = Field(None, max_length=128, description="The request's id.")
    client: str | None = Field(None, max_length=256, description="The client's address.")
    content: dict[str, str] = Field(
        default_factory=dict,
        description="Excerpts by name (code, stdout, text), as the policy keeps them: redacted "
        "by the caller already, or absent.",
    )
    details: dict[str, JsonValue] = Field(
        default_factory=dict,
        description="Structured facts: resource use, limits hit, findings, egress attempts.",
    )

    @field_validator(
        "verdict", "status", "tenant", "key_id", "key_name", "policy_name", "policy_hash",
        "request_id", "client", mode="before",
    )  # fmt: skip
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # One spelling for "absent", so a CSV export (where both are an empty cell) re-verifies.
        return None if value == "" else value


class AuditRecord(AuditEvent):
    """An event sealed into the chain: its place, identity, time and hashes."""

    seq: int = Field(ge=1, description="Position in the log, 1, 2, 3... with no gaps.")
    id: str = Field(min_length=1, max_length=64, description="Unique id of the record.")
    time: str = Field(pattern=TIME_PATTERN, description="UTC, ISO-8601 with microseconds.")
    prev_hash: str = Field(pattern=HEX64, description="`hash` of the record before.")
    hash: str = Field(pattern=HEX64, description="SHA-256 of this record's canonical form.")

    @property
    def timestamp(self) -> datetime:
        """`time` as an aware datetime."""
        return datetime.fromisoformat(self.time)


class Checkpoint(BaseModel):
    """A signed statement that the log held record `seq` with `hash` at `time`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq: int = Field(ge=1, description="The record the checkpoint signs.")
    hash: str = Field(pattern=HEX64, description="That record's hash.")
    time: str = Field(pattern=TIME_PATTERN, description="When the checkpoint was written.")
    reason: CheckpointReason = Field(description="periodic, manual, or prune (a retention cut).")
    mac: str = Field(pattern=HEX64, description="HMAC-SHA256 over seq, hash, time and reason.")


class Head(BaseModel):
    """The end of the chain: the last seq and hash given out (0 and the genesis when empty)."""

    model_config = ConfigDict(frozen=True)

    seq: int
    hash: str
    time: str | None


class RecordFilter(BaseModel):
    """Which records to read. Every field narrows; an empty filter means all records."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: datetime | None = Field(None, description="Records at or after (naive means UTC).")
    until: datetime | None = Field(None, description="Records strictly before (naive: UTC).")
    key_id: str | None = Field(None, max_length=256)
    tenant: str | None = Field(None, max_length=256)
    action: str | None = Field(None, max_length=64)
    verdict: str | None = Field(None, max_length=64)
    min_seq: int | None = Field(None, ge=1, le=2**63 - 1, description="Records with seq >= this.")
    max_seq: int | None = Field(None, ge=0, le=2**63 - 1, description="Records with seq <= this.")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @property
    def contiguous(self) -> bool:
        """True when the filter selects a run of consecutive records (only time and seq)."""
        return (
            self.key_id is None
            and self.tenant is None
            and self.action is None
            and (self.verdict is None)
        )


class VerifyReport(BaseModel):
    """What walking the chain found: all good, or the first record that does not hold."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    count: int = Field(description="Records checked.")
    first_seq: int | None = None
    last_seq: int | None = None
    bad_seq: int | None = Field(None, description="The first record that does not hold.")
    reason: str | None = None
    checkpoints: int = Field(0, description="Checkpoints checked against the records.")
    macs_checked: bool = Field(False, description="Whether checkpoint HMACs were verified.")
    anchored: bool = Field(False, description="The first record links to genesis or a checkpoint.")
    authenticated_through: int | None = Field(
        None, description="Highest seq pinned by a valid HMAC checkpoint (all before it too)."
    )

    def summary(self) -> str:
        """One line for people: 'all N records hold' or the first bad record and why."""
        if not self.ok:
            return f"record seq {self.bad_seq} does not hold: {self.reason}"
        text = f"all {self.count} records hold"
        if self.count:
            text += f" (seq {self.first_seq}..{self.last_seq})"
            if not self.anchored:
                text += ", its start not anchored to genesis or a checkpoint"
        if self.macs_checked and self.authenticated_through is not None:
            text += f"; signed checkpoints vouch through seq {self.authenticated_through}"
        elif not self.macs_checked:
            text += "; checkpoint signatures not checked (no HMAC key given)"
        return text


class PruneResult(BaseModel):
    """What `prune` removed, and the checkpoint that now anchors the rest."""

    model_config = ConfigDict(frozen=True)

    deleted: int
    checkpoint: Checkpoint | None


class AuditStore(abc.ABC):
    """An append-only, hash-chained audit log. Thread-safe; appends serialise across processes.

    Every method raises `AuditUnavailable` when the database cannot be used.
    """

    def append(self, event: AuditEvent) -> AuditRecord:
        """Seal and durably commit one event; returns only after the commit."""
        return self.append_many([event])[0]

    @abc.abstractmethod
    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Seal and commit several events in one transaction (all or none)."""

    @abc.abstractmethod
    def iter_records(
        self, where: RecordFilter | None = None, *, batch_size: int = 500
    ) -> Generator[AuditRecord]:
        """Stream matching records oldest first, in constant memory (a cursor, read in batches).

        The iterator holds a database connection until exhausted or closed: close it
        (`contextlib.closing`) when stopping early.
        """

    @abc.abstractmethod
    def iter_checkpoints(
        self, *, min_seq: int | None = None, max_seq: int | None = None
    ) -> Generator[Checkpoint]:
        """Stream checkpoints by seq (then reason), oldest first."""

    @abc.abstractmethod
    def last_checkpoint(self, at_or_before: int) -> Checkpoint | None:
        """The newest checkpoint signing a seq at or before `at_or_before`."""

    @abc.abstractmethod
    def page(
        self, where: RecordFilter | None = None, *, limit: int = 50, before_seq: int | None = None
    ) -> list[AuditRecord]:
        """Up to `limit` (1..1000) matching records, newest first, with seq < `before_seq`."""

    @abc.abstractmethod
    def count(self, where: RecordFilter | None = None) -> int:
        """How many records match."""

    @abc.abstractmethod
    def head(self) -> Head:
        """The last seq and hash handed out."""

    @abc.abstractmethod
    def checkpoint(self, hmac_key: bytes, *, reason: CheckpointReason = "manual") -> Checkpoint:
        """Sign the current head now (or return the same-reason checkpoint already there).

        Raises `AuditError` when the log is empty: there is nothing to sign.
        """

    @abc.abstractmethod
    def prune(self, before: datetime, hmac_key: bytes) -> PruneResult:
        """Delete records older than `before` in one transaction, after a signed checkpoint."""

    @abc.abstractmethod
    def verify(
        self, hmac_key: bytes | None = None, *, witness: Checkpoint | None = None
    ) -> VerifyReport:
        """Walk the whole chain (and checkpoints); report the first record that does not hold.

        With `hmac_key`, every checkpoint's HMAC is checked too. `witness` is a checkpoint kept
        outside the database (an earlier export, `sandgate audit checkpoint`, the service log):
        the log must still hold the record it signs, unchanged, which catches a cut-off tail
        even when the checkpoints in the database were deleted with it.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release every connection; the store cannot be used afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
