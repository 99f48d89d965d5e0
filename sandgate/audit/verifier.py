"""Walking a chain: the one verifier used for the live log and for exported slices.

Feed records and checkpoints in seq order (a checkpoint right after the record it signs, an
anchor checkpoint before the first record), then call `finish`. Modes:

    log       the whole store: it must start at seq 1 (genesis) or right after a `prune`
              checkpoint, have no gaps, and every checkpoint must sign a record that is there
    slice     a contiguous export: like `log`, but it may start anywhere; `anchored` says
              whether its start links to genesis or to a checkpoint
    filtered  an export filtered by key/tenant/action/verdict: gaps are expected, so only each
              record's own hash, and checkpoints whose record is present, are checked
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal

from sandgate.audit.base import AuditRecord, Checkpoint, Head, VerifyReport
from sandgate.audit.chain import GENESIS, checkpoint_valid, record_hash

__all__ = ["ChainVerifier", "Mode", "merge"]

Mode = Literal["log", "slice", "filtered"]


def merge(
    records: Iterable[AuditRecord], checkpoints: Iterable[Checkpoint]
) -> Iterator[AuditRecord | Checkpoint]:
    """Interleave two seq-ordered streams: each checkpoint right after the record it signs."""
    pending = iter(checkpoints)
    nxt = next(pending, None)
    for record in records:
        while nxt is not None and nxt.seq < record.seq:
            yield nxt
            nxt = next(pending, None)
        yield record
        while nxt is not None and nxt.seq == record.seq:
            yield nxt
            nxt = next(pending, None)
    while nxt is not None:
        yield nxt
        nxt = next(pending, None)


class ChainVerifier:
    """Checks a stream of records and checkpoints; stops at the first problem."""

    def __init__(self, hmac_key: bytes | None = None, *, mode: Mode = "log") -> None:
        self._key = hmac_key
        self._mode = mode
        self._count = 0
        self._first: AuditRecord | None = None
        self._last: AuditRecord | None = None
        self._anchor: Checkpoint | None = None
        self._anchor_prune = False
        self._anchored = False
        self._checkpoints = 0
        self._authenticated: int | None = None
        self._bad: tuple[int, str] | None = None

    @property
    def failed(self) -> bool:
        """Whether a problem was found (further input is ignored)."""
        return self._bad is not None

    def fail(self, seq: int, reason: str) -> None:
        """Record a problem found outside the verifier (an unreadable row, say)."""
        if self._bad is None:
            self._bad = (seq, reason)

    def feed(self, item: AuditRecord | Checkpoint) -> None:
        """Check the next record or checkpoint."""
        if self._bad is not None:
            return
        if isinstance(item, Checkpoint):
            self._checkpoint(item)
        else:
            self._record(item)

    def feed_all(self, items: Iterable[AuditRecord | Checkpoint]) -> None:
        """Feed a whole stream, stopping early on the first problem."""
        for item in items:
            self.feed(item)
            if self._bad is not None:
                return

    def _checkpoint(self, cp: Checkpoint) -> None:
        if self._key is not None and not checkpoint_valid(self._key, cp):
            self.fail(cp.seq, f"the {cp.reason} checkpoint signing seq {cp.seq} has a bad HMAC")
            return
        last = self._last
        if last is None:
            if self._anchor is None or cp.seq >= self._anchor.seq:
                same_seq = self._anchor is not None and cp.seq == self._anchor.seq
                self._anchor_prune = (same_seq and self._anchor_prune) or cp.reason == "prune"
                self._anchor = cp
            return
        if cp.seq == last.seq:
            if cp.hash != last.hash:
                self.fail(
                    cp.seq,
                    f"differs from what the {cp.reason} checkpoint signed: this record or one "
                    "before it was rewritten and the hashes recomputed",
                )
                return
            self._checkpoints += 1
            if last is self._first:
                self._anchored = True
            if self._key is not None:
                self._authenticated = cp.seq
        elif cp.seq > last.seq and self._mode != "filtered":
            self.fail(
                last.seq + 1,
                f"is missing: a {cp.reason} checkpoint signs seq {cp.seq}, but the log ends at "
                f"seq {last.seq} (records were cut off the end)",
            )

    def _record(self, rec: AuditRecord) -> None:
        last = self._last
        if last is not None and self._mode != "filtered":
            if rec.seq <= last.seq:
                self.fail(rec.seq, f"is out of order: it comes after seq {last.seq}")
                return
            if rec.seq != last.seq + 1:
                missing = (
                    f"{last.seq + 1}"
                    if rec.seq == last.seq + 2
                    else f"{last.seq + 1}..{rec.seq - 1}"
                )
                self.fail(last.seq + 1, f"is missing: records {missing} were removed")
                return
        if record_hash(rec.model_dump()) != rec.hash:
            self.fail(rec.seq, "its contents do not match its hash: it was edited")
            return
        if last is None:
            self._start(rec)
        elif self._mode != "filtered" and rec.prev_hash != last.hash:
            self.fail(rec.seq, f"its prev_hash does not link to seq {last.seq}")
            return
        if self._first is None:
            self._first = rec
        self._last = rec
        self._count += 1

    def _start(self, rec: AuditRecord) -> None:
        anchor = self._anchor
        if rec.seq == 1:
            if rec.prev_hash != GENESIS:
                self.fail(1, "the first record's prev_hash is not the genesis hash")
            self._anchored = True
            return
        if anchor is not None and anchor.seq == rec.seq - 1:
            if rec.prev_hash != anchor.hash:
                self.fail(
                    rec.seq, f"its prev_hash does not link to the checkpoint at seq {anchor.seq}"
                )
                return
            if self._mode == "log" and not self._anchor_prune:
                self.fail(
                    rec.seq - 1,
                    "is missing: records before seq "
                    f"{rec.seq} were removed, and no prune checkpoint accounts for it",
                )
                return
            self._anchored = True
            self._checkpoints += 1
            if self._key is not None:
                self._authenticated = anchor.seq
            return
        if self._mode == "log":
            self.fail(
                rec.seq - 1,
                f"is missing: the log starts at seq {rec.seq} and no prune checkpoint anchors it",
            )

    def finish(self, head: Head | None = None) -> VerifyReport:
        """The report; with `head` (log mode), also check the log ends where the head says."""
        if self._bad is None and self._mode == "log":
            self._check_start_without_records()
        if self._bad is None and head is not None:
            self._check_head(head)
        first, last = self._first, self._last
        bad = self._bad
        return VerifyReport(
            ok=bad is None,
            count=self._count,
            first_seq=first.seq if first else None,
            last_seq=last.seq if last else None,
            bad_seq=bad[0] if bad else None,
            reason=bad[1] if bad else None,
            checkpoints=self._checkpoints,
            macs_checked=self._key is not None,
            anchored=self._anchored,
            authenticated_through=self._authenticated,
        )

    def _check_start_without_records(self) -> None:
        anchor = self._anchor
        if self._last is None and anchor is not None and not self._anchor_prune:
            self.fail(anchor.seq, "is missing: the log is empty, and no prune checkpoint says why")

    def _check_head(self, head: Head) -> None:
        last = self._last
        end_seq = last.seq if last else (self._anchor.seq if self._anchor else 0)
        end_hash = last.hash if last else (self._anchor.hash if self._anchor else GENESIS)
        if head.seq > end_seq:
            self.fail(end_seq + 1, f"is missing: the log's head says seq {head.seq} was written")
        elif head.seq < end_seq:
            self.fail(head.seq + 1, f"is beyond the log's head (seq {head.seq})")
        elif head.hash != end_hash:
            self.fail(end_seq, "does not match the hash the log's head recorded for it")
