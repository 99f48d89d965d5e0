"""Retention on both backends: prune signs first, deletes in one go, and the rest verifies."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from sandgate.audit import AuditStore, RecordFilter
from sandgate.audit.export import export_lines, verify_export
from tests.audit.helpers import HMAC_KEY, RawDb, event


def _two_batches(store: AuditStore) -> datetime:
    """Records 1-5, a pause, records 6-9; returns the time between them."""
    store.append_many([event(n) for n in range(5)])
    time.sleep(0.01)
    cut = datetime.now(UTC)
    time.sleep(0.01)
    for n in range(5, 9):
        store.append(event(n))
    return cut


def test_when_pruned_then_old_records_go_and_the_rest_verifies(store: AuditStore) -> None:
    cut = _two_batches(store)
    result = store.prune(cut, HMAC_KEY)
    assert result.deleted == 5
    assert result.checkpoint is not None
    assert (result.checkpoint.seq, result.checkpoint.reason) == (5, "prune")
    assert [r.seq for r in store.iter_records()] == [6, 7, 8, 9]
    report = store.verify(HMAC_KEY)
    assert report.ok and report.count == 4 and report.anchored, report.summary()
    assert report.authenticated_through == 5


def test_when_appending_after_a_prune_then_the_chain_goes_on(store: AuditStore) -> None:
    store.prune(_two_batches(store), HMAC_KEY)
    assert store.append(event(99)).seq == 10
    assert store.verify(HMAC_KEY).ok


def test_when_everything_is_pruned_then_the_empty_log_still_verifies_and_continues(
    store: AuditStore,
) -> None:
    store.append_many([event(n) for n in range(4)])
    time.sleep(0.01)
    result = store.prune(datetime.now(UTC), HMAC_KEY)
    assert result.deleted == 4 and store.count() == 0
    assert store.verify(HMAC_KEY).ok
    rec = store.append(event(5))
    assert rec.seq == 5 and result.checkpoint is not None
    assert rec.prev_hash == result.checkpoint.hash
    assert store.verify(HMAC_KEY).ok


def test_when_nothing_is_old_enough_then_prune_changes_nothing(store: AuditStore) -> None:
    store.append_many([event(n) for n in range(3)])
    result = store.prune(datetime.now(UTC) - timedelta(days=1), HMAC_KEY)
    assert result.deleted == 0 and result.checkpoint is None
    assert store.count() == 3 and list(store.iter_checkpoints()) == []


def test_when_pruned_twice_then_older_checkpoints_go_and_the_newest_anchors(
    store: AuditStore,
) -> None:
    first_cut = _two_batches(store)
    store.checkpoint(HMAC_KEY)
    store.prune(first_cut, HMAC_KEY)
    time.sleep(0.01)
    second = store.prune(datetime.now(UTC), HMAC_KEY)
    assert second.deleted == 4 and second.checkpoint is not None
    assert [(c.seq, c.reason) for c in store.iter_checkpoints()] == [(9, "manual"), (9, "prune")]
    assert store.verify(HMAC_KEY).ok


def test_when_a_pruned_log_is_exported_then_the_slice_verifies_from_the_prune_checkpoint(
    store: AuditStore,
) -> None:
    store.prune(_two_batches(store), HMAC_KEY)
    lines = list(export_lines(store, "jsonl", RecordFilter()))
    report = verify_export(lines, "jsonl", hmac_key=HMAC_KEY)
    assert report.ok and report.anchored and report.first_seq == 6


def test_when_pruned_then_the_deleted_rows_are_gone_from_the_database(
    store: AuditStore, raw: RawDb
) -> None:
    store.prune(_two_batches(store), HMAC_KEY)
    assert raw.execute("SELECT min(seq), count(*) FROM audit_records")[0] == (6, 4)


def test_when_the_prune_key_is_too_short_then_nothing_is_deleted(store: AuditStore) -> None:
    cut = _two_batches(store)
    with pytest.raises(Exception, match="at least 16 bytes"):
        store.prune(cut, b"short")
    assert store.count() == 9
