"""Tampering the way someone with database access would, on both backends, and what catches it.

What the hash chain alone catches: an edited field, a deleted, inserted or reordered record,
an edited last record, a record whose stored hash was changed, a log whose first records were
removed. What it cannot catch: the tail cut off (and the head row set back to match), or a
record rewritten with every later hash recomputed. Signed checkpoints close both: a checkpoint
pins its record's hash, so a rewrite before it or a cut below it is named. Records after the
newest checkpoint stay exposed: an outside witness (a checkpoint the auditor kept) covers them.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from sandgate.audit import AuditStore, Checkpoint
from sandgate.audit.chain import record_hash
from tests.audit.helpers import HMAC_KEY, RawDb, event

N = 12


def _hash_of(raw: RawDb, seq: int) -> str:
    return str(raw.execute("SELECT hash FROM audit_records WHERE seq = ?", (seq,))[0][0])


def _record(raw: RawDb, seq: int) -> dict[str, object]:
    columns = [
        "seq", "id", "time", "action", "verdict", "status", "tenant", "key_id", "key_name",
        "policy_name", "policy_hash", "request_id", "client", "content", "details", "prev_hash",
        "hash",
    ]  # fmt: skip
    row = raw.execute(f"SELECT {', '.join(columns)} FROM audit_records WHERE seq = ?", (seq,))[0]
    values = dict(zip(columns, row, strict=True))
    values["content"] = json.loads(str(values["content"]))
    values["details"] = json.loads(str(values["details"]))
    return values


def _write(raw: RawDb, values: dict[str, object]) -> None:
    """Store a record (replacing the one at its seq), as an attacker writing the table would."""
    row = dict(values)
    row["content"] = json.dumps(row["content"], sort_keys=True, separators=(",", ":"))
    row["details"] = json.dumps(row["details"], sort_keys=True, separators=(",", ":"))
    raw.execute("DELETE FROM audit_records WHERE seq = ?", (row["seq"],))
    names = list(row)
    raw.execute(
        f"INSERT INTO audit_records ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
        tuple(row.values()),
    )


def _shift(raw: RawDb, after: int, by: int) -> None:
    """Renumber records after `after` (through negatives: seq is a primary key)."""
    raw.execute("UPDATE audit_records SET seq = -(seq + ?) WHERE seq > ?", (by, after))
    raw.execute("UPDATE audit_records SET seq = -seq WHERE seq < 0")


def edit_field(raw: RawDb) -> None:
    raw.execute("UPDATE audit_records SET verdict = 'tampered' WHERE seq = 5")


def edit_content(raw: RawDb) -> None:
    raw.execute("""UPDATE audit_records SET content = '{"code":"print(666)"}' WHERE seq = 7""")


def edit_stored_hash(raw: RawDb) -> None:
    raw.execute("UPDATE audit_records SET hash = ? WHERE seq = 4", ("f" * 64,))


def delete_record(raw: RawDb) -> None:
    raw.execute("DELETE FROM audit_records WHERE seq = 5")


def delete_first_records(raw: RawDb) -> None:
    raw.execute("DELETE FROM audit_records WHERE seq <= 3")


def insert_record(raw: RawDb) -> None:
    """A forged record at seq 6 that hashes right and links to 5; the old 6 becomes 7."""
    forged = _record(raw, 6)
    _shift(raw, after=5, by=1)
    forged.update(id=str(uuid.uuid4()), verdict="allow", request_id="forged")
    forged["prev_hash"] = _hash_of(raw, 5)
    forged["hash"] = record_hash(forged)
    # prev_hash is UNIQUE: the attacker must re-point the old record 6 at the forgery.
    raw.execute("UPDATE audit_records SET prev_hash = ? WHERE seq = 7", (forged["hash"],))
    _write(raw, forged)


def reorder_two(raw: RawDb) -> None:
    raw.execute("UPDATE audit_records SET seq = -5 WHERE seq = 5")
    raw.execute("UPDATE audit_records SET seq = 5 WHERE seq = 6")
    raw.execute("UPDATE audit_records SET seq = 6 WHERE seq = -5")


def edit_last(raw: RawDb) -> None:
    raw.execute("UPDATE audit_records SET status = 'timeout' WHERE seq = ?", (N,))


def rehash_last(raw: RawDb) -> None:
    """Edit the last record and fix its hash: only the head row's copy of the hash disagrees."""
    values = _record(raw, N)
    values["verdict"] = "allow" if values["verdict"] == "block" else "block"
    values["hash"] = record_hash(values)
    _write(raw, values)


def relink(raw: RawDb) -> None:
    values = _record(raw, 5)
    values["prev_hash"] = "e" * 64
    values["hash"] = record_hash(values)
    _write(raw, values)


def cut_tail(raw: RawDb) -> None:
    raw.execute("DELETE FROM audit_records WHERE seq > 9")


def break_json(raw: RawDb) -> None:
    raw.execute("UPDATE audit_records SET details = 'not json' WHERE seq = 8")


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "why"),
    [
        (edit_field, 5, "edited"),
        (edit_content, 7, "edited"),
        (edit_stored_hash, 4, "edited"),
        (delete_record, 5, "missing"),
        (delete_first_records, 3, "no prune checkpoint"),
        (insert_record, 7, "edited"),
        (reorder_two, 5, "edited"),
        (edit_last, N, "edited"),
        (rehash_last, N, "head recorded"),
        (relink, 5, "does not link"),
        (cut_tail, 10, "head says seq 12"),
        (break_json, 8, "not JSON"),
    ],
)
def test_when_a_record_is_tampered_then_verify_names_the_first_bad_one(
    store: AuditStore, raw: RawDb, tamper: Callable[[RawDb], None], bad_seq: int, why: str
) -> None:
    store.append_many([event(n) for n in range(N)])
    assert store.verify(HMAC_KEY).ok
    raw.drop_triggers()
    tamper(raw)
    report = store.verify(HMAC_KEY)
    assert not report.ok
    assert report.bad_seq == bad_seq, report.reason
    assert why in (report.reason or "")
    assert f"record seq {bad_seq}" in report.summary()


def _rewrite_from(raw: RawDb, seq: int, *, fix_checkpoints: bool) -> None:
    """Edit record `seq` and recompute every hash after it, head row (and checkpoints) too."""
    prev = _hash_of(raw, seq - 1)
    for n in range(seq, N + 1):
        values = _record(raw, n)
        if n == seq:
            values["verdict"] = "tampered"
        values["prev_hash"] = prev
        values["hash"] = prev = record_hash(values)
        _write(raw, values)
        if fix_checkpoints:
            raw.execute("UPDATE audit_checkpoints SET hash = ? WHERE seq = ?", (prev, n))
    raw.execute("UPDATE audit_head SET hash = ?", (prev,))


def _setup_with_checkpoint(store: AuditStore, at: int | None) -> None:
    for n in range(N):
        store.append(event(n))
        if at is not None and n + 1 == at:
            store.checkpoint(HMAC_KEY)


def test_when_records_are_rewritten_and_rehashed_then_only_a_checkpoint_notices(
    store: AuditStore, raw: RawDb
) -> None:
    _setup_with_checkpoint(store, at=None)
    raw.drop_triggers()
    _rewrite_from(raw, 3, fix_checkpoints=False)
    assert store.verify(HMAC_KEY).ok  # the chain alone cannot tell: the known limit


def test_when_rewritten_before_a_checkpoint_then_verify_names_the_checkpointed_record(
    store: AuditStore, raw: RawDb
) -> None:
    _setup_with_checkpoint(store, at=8)
    raw.drop_triggers()
    _rewrite_from(raw, 3, fix_checkpoints=False)
    for key in (HMAC_KEY, None):
        report = store.verify(key)
        assert not report.ok and report.bad_seq == 8
        assert "rewritten" in (report.reason or "")


def test_when_the_checkpoint_is_rewritten_too_then_its_hmac_gives_it_away(
    store: AuditStore, raw: RawDb
) -> None:
    _setup_with_checkpoint(store, at=8)
    raw.drop_triggers()
    _rewrite_from(raw, 3, fix_checkpoints=True)
    report = store.verify(HMAC_KEY)
    assert not report.ok and report.bad_seq == 8 and "bad HMAC" in (report.reason or "")
    unkeyed = store.verify()
    assert unkeyed.ok and not unkeyed.macs_checked  # without the key a checkpoint is just a hash


def _cut_tail_and_head(raw: RawDb, keep: int) -> None:
    raw.execute("DELETE FROM audit_records WHERE seq > ?", (keep,))
    raw.execute("UPDATE audit_head SET seq = ?, hash = ?", (keep, _hash_of(raw, keep)))


def test_when_the_tail_is_cut_and_no_checkpoint_covers_it_then_the_chain_cannot_tell(
    store: AuditStore, raw: RawDb
) -> None:
    _setup_with_checkpoint(store, at=None)
    raw.drop_triggers()
    _cut_tail_and_head(raw, keep=7)
    report = store.verify(HMAC_KEY)
    assert report.ok and report.count == 7  # the classic gap of a bare hash chain


def test_when_the_tail_is_cut_below_a_checkpoint_then_verify_names_the_first_missing(
    store: AuditStore, raw: RawDb
) -> None:
    _setup_with_checkpoint(store, at=10)
    raw.drop_triggers()
    _cut_tail_and_head(raw, keep=7)
    report = store.verify(HMAC_KEY)
    assert not report.ok and report.bad_seq == 8
    assert "checkpoint signs seq 10" in (report.reason or "")


def test_when_the_tail_and_its_checkpoints_are_cut_then_an_outside_witness_catches_it(
    store: AuditStore, raw: RawDb
) -> None:
    _setup_with_checkpoint(store, at=10)
    witness = Checkpoint.model_validate(list(store.iter_checkpoints())[0].model_dump())
    raw.drop_triggers()
    _cut_tail_and_head(raw, keep=7)
    raw.execute("DELETE FROM audit_checkpoints")
    assert store.verify(HMAC_KEY).ok
    report = store.verify(HMAC_KEY, witness=witness)
    assert not report.ok and report.bad_seq == 8 and "witness" in (report.reason or "")


def test_when_a_witness_signs_a_rewritten_record_then_verify_fails(
    store: AuditStore, raw: RawDb
) -> None:
    _setup_with_checkpoint(store, at=6)
    witness = store.last_checkpoint(at_or_before=6)
    assert witness is not None
    raw.drop_triggers()
    raw.execute("DELETE FROM audit_checkpoints")
    _rewrite_from(raw, 2, fix_checkpoints=False)
    assert store.verify(HMAC_KEY).ok
    assert store.verify(HMAC_KEY, witness=witness).bad_seq == 6


def test_when_records_are_cut_behind_a_periodic_checkpoint_then_it_is_no_excuse(
    make_store: Callable[..., AuditStore], raw: RawDb
) -> None:
    store = make_store(hmac_key=HMAC_KEY, checkpoint_every=4)
    store.append_many([event(n) for n in range(4)])
    store.append_many([event(n) for n in range(4, N)])
    raw.drop_triggers()
    raw.execute("DELETE FROM audit_records WHERE seq <= 4")
    report = store.verify(HMAC_KEY)
    assert not report.ok and report.bad_seq == 4 and "no prune checkpoint" in (report.reason or "")


def test_when_a_prune_checkpoint_is_forged_then_its_hmac_gives_it_away(
    store: AuditStore, raw: RawDb
) -> None:
    store.append_many([event(n) for n in range(N)])
    forged = (4, "prune", _hash_of(raw, 4), "2020-01-01T00:00:00.000000Z", "a" * 64)
    raw.execute(
        "INSERT INTO audit_checkpoints (seq, reason, hash, time, mac) VALUES (?, ?, ?, ?, ?)",
        forged,
    )
    raw.execute("DELETE FROM audit_records WHERE seq <= 4")  # the trigger lets the prune path in
    report = store.verify(HMAC_KEY)
    assert not report.ok and report.bad_seq == 4 and "bad HMAC" in (report.reason or "")
