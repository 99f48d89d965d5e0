"""The chaining and signing scheme (version 1), written for an auditor who re-checks it by hand.

Canonical form
    A record's canonical form is the JSON object of exactly these 16 fields:

        seq id time action verdict status tenant key_id key_name policy_name policy_hash
        request_id client content details prev_hash

    serialised with keys sorted by code point, no whitespace (separators "," and ":"), UTF-8
    without \\u escapes for non-ASCII, absent values as `null`, and NaN/Infinity refused: in
    Python, `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    allow_nan=False).encode()`. `content` is an object of strings; `details` any JSON object;
    `time` is UTC as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.

Chain
    hash = lowercase hex SHA-256 of the canonical form. `prev_hash` is the previous record's
    `hash`; the first record ever (seq 1) has 64 zeros (`GENESIS`). Because `hash` covers
    `seq` and `prev_hash`, editing a record changes its hash; deleting, inserting or
    reordering breaks either the seq run (1, 2, 3... without gaps) or the prev_hash link.
    A JSONL export line *is* the canonical form plus `"hash"`: drop `hash`, re-serialise,
    hash, compare, and check that `prev_hash` equals the line before's `hash`.

Checkpoints
    mac = lowercase hex HMAC-SHA256(key, canonical form of
    {"scheme": "sandgate-audit-checkpoint/1", "seq", "hash", "time", "reason"}),
    where `seq`/`hash` name the signed record, `time` is when it was signed, and `reason` is
    `periodic` (every N records or T seconds), `manual` (on demand) or `prune`. The key comes
    from the operator's settings (SANDGATE_AUDIT_HMAC_KEY); the database never holds it.

What each part proves
    The SHA-256 chain alone detects any change made by someone who does not recompute the
    hashes: an edited field, a deleted, inserted or reordered record, an edited last record.
    It cannot detect (a) the tail being cut off: a shorter chain is still a valid chain, and
    (b) someone with write access rewriting a record and recomputing every hash after it.
    A valid checkpoint at seq c pins the hash of record c, and with it (through the chain)
    every record before c: rewriting any of them changes hash c, and truncating the log below
    c leaves a checkpoint that signs a record no longer there. Records after the newest
    checkpoint are only as safe as the database, so checkpoints are written every N records
    and every T seconds, logged by the service too, and an auditor keeps the newest one seen.
    A checkpoint is also the anchor of a retention cut: `prune` signs the last record it
    removes, so the first remaining record's `prev_hash` must equal that checkpoint's hash,
    and only a `prune` checkpoint may justify a log that does not start at seq 1.

Slices
    An exported contiguous slice (filtered by time or seq only) starts right after the
    checkpoint at or before its first record, carries that checkpoint and every checkpoint
    inside it, and verifies from it: the checkpoint's HMAC, then the chain onward. A slice
    filtered by key, tenant, action or verdict has gaps by design: each record's own hash is
    checked, and each checkpoint whose record is in the slice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sandgate.audit.base import (
    AuditError,
    AuditEvent,
    AuditRecord,
    Checkpoint,
    CheckpointReason,
)

__all__ = [
    "CHECKPOINT_SCHEME",
    "GENESIS",
    "MIN_HMAC_KEY_BYTES",
    "RECORD_FIELDS",
    "canonical",
    "checkpoint_mac",
    "checkpoint_valid",
    "format_time",
    "record_hash",
    "seal",
    "seal_fields",
    "sign_checkpoint",
]

GENESIS = "0" * 64
CHECKPOINT_SCHEME = "sandgate-audit-checkpoint/1"
MIN_HMAC_KEY_BYTES = 16
RECORD_FIELDS: tuple[str, ...] = (
    "seq",
    "id",
    "time",
    "action",
    "verdict",
    "status",
    "tenant",
    "key_id",
    "key_name",
    "policy_name",
    "policy_hash",
    "request_id",
    "client",
    "content",
    "details",
    "prev_hash",
)


def canonical(value: Mapping[str, Any]) -> str:
    """The canonical JSON text of an object: sorted keys, no whitespace, no NaN."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def format_time(moment: datetime) -> str:
    """UTC, ISO-8601 with microseconds and a Z: the only time format the log holds."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical form of a record's 16 fields (any `hash` key is ignored)."""
    body = {name: fields.get(name) for name in RECORD_FIELDS}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def seal_fields(
    fields: dict[str, Any], *, seq: int, record_id: str, time: str, prev_hash: str
) -> dict[str, Any]:
    """Add seq, id, time and prev_hash to an event's fields, and their `hash` (in place)."""
    fields.update(seq=seq, id=record_id, time=time, prev_hash=prev_hash)
    fields["hash"] = record_hash(fields)
    return fields


def seal(event: AuditEvent, *, seq: int, record_id: str, time: str, prev_hash: str) -> AuditRecord:
    """Place an event in the chain: add its seq, id, time and prev_hash, and hash it all."""
    fields = seal_fields(
        event.model_dump(), seq=seq, record_id=record_id, time=time, prev_hash=prev_hash
    )
    # The event was validated on construction and the added fields are ours: skip re-validation.
    return AuditRecord.model_construct(**fields)


def check_hmac_key(key: bytes) -> None:
    """Refuse a key too short to be a secret."""
    if len(key) < MIN_HMAC_KEY_BYTES:
        raise AuditError(f"the audit HMAC key must be at least {MIN_HMAC_KEY_BYTES} bytes")


def checkpoint_mac(key: bytes, *, seq: int, hash: str, time: str, reason: str) -> str:
    """HMAC-SHA256 over the checkpoint's canonical statement."""
    statement = {
        "scheme": CHECKPOINT_SCHEME,
        "seq": seq,
        "hash": hash,
        "time": time,
        "reason": reason,
    }
    return hmac.new(key, canonical(statement).encode(), hashlib.sha256).hexdigest()


def sign_checkpoint(
    key: bytes, *, seq: int, hash: str, time: str, reason: CheckpointReason
) -> Checkpoint:
    """A checkpoint over record `seq` whose hash is `hash`, signed with `key`."""
    check_hmac_key(key)
    mac = checkpoint_mac(key, seq=seq, hash=hash, time=time, reason=reason)
    return Checkpoint(seq=seq, hash=hash, time=time, reason=reason, mac=mac)


def checkpoint_valid(key: bytes, checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint's MAC is right for `key` (compared in constant time)."""
    expected = checkpoint_mac(
        key,
        seq=checkpoint.seq,
        hash=checkpoint.hash,
        time=checkpoint.time,
        reason=checkpoint.reason,
    )
    return hmac.compare_digest(expected, checkpoint.mac)
