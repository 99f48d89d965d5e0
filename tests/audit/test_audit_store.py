"""The store's behaviour on both backends: sealing, reading, filtering, append-only, secrets."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from sandgate.audit import AuditRejected, AuditStore, RecordFilter, open_store
from sandgate.audit.chain import GENESIS, canonical
from sandgate.audit.guard import EventGuard
from tests.audit.helpers import HMAC_KEY, RawDb, event

KEY = "sg_" + "Zm9vYmFyYmF6cXV4LXNlY3JldC1rZXk_-abc"


def test_when_events_are_appended_then_they_chain_from_genesis(store: AuditStore) -> None:
    records = [store.append(event(n)) for n in range(3)]
    assert [r.seq for r in records] == [1, 2, 3]
    assert records[0].prev_hash == GENESIS
    for before, after in zip(records, records[1:], strict=False):
        assert after.prev_hash == before.hash
    body = {k: v for k, v in records[1].model_dump().items() if k != "hash"}
    independent = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert records[1].hash == hashlib.sha256(independent.encode()).hexdigest()
    assert len({r.id for r in records}) == 3
    assert records[0].time.endswith("Z") and len(records[0].time) == 27
    assert store.head().seq == 3 and store.head().hash == records[2].hash


def test_when_read_back_then_records_equal_what_append_returned(store: AuditStore) -> None:
    written = store.append_many(
        [event(n, details={"nested": {"ü": [1, 2.5, None]}}) for n in range(5)]
    )
    assert list(store.iter_records()) == written
    assert store.verify(HMAC_KEY).ok


def test_when_times_are_read_then_they_never_go_backwards(store: AuditStore) -> None:
    for n in range(20):
        store.append(event(n))
    times = [r.time for r in store.iter_records()]
    assert times == sorted(times)


def test_when_paging_then_newest_first_and_before_seq_continues(store: AuditStore) -> None:
    store.append_many([event(n) for n in range(12)])
    first = store.page(limit=5)
    assert [r.seq for r in first] == [12, 11, 10, 9, 8]
    second = store.page(limit=5, before_seq=first[-1].seq)
    assert [r.seq for r in second] == [7, 6, 5, 4, 3]
    only_acme = store.page(RecordFilter(tenant="acme"), limit=100)
    assert only_acme and all(r.tenant == "acme" for r in only_acme)


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_when_page_limit_is_out_of_range_then_refused(store: AuditStore, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.page(limit=limit)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (RecordFilter(tenant="globex"), lambda n: n % 3 == 0),
        (RecordFilter(key_id="key-1"), lambda n: n % 4 == 1),
        (RecordFilter(verdict="block"), lambda n: n % 2 == 1),
        (RecordFilter(action="screen"), lambda n: n >= 10),
        (RecordFilter(tenant="acme", verdict="allow"), lambda n: n % 3 != 0 and n % 2 == 0),
        (RecordFilter(min_seq=4, max_seq=6), lambda n: 3 <= n <= 5),
        (RecordFilter(tenant="nobody"), lambda n: False),
    ],
)
def test_when_filtering_then_exactly_the_matching_records_come_back(
    store: AuditStore, where: RecordFilter, expected: Callable[[int], bool]
) -> None:
    store.append_many([event(n, action="screen" if n >= 10 else "execute") for n in range(14)])
    got = [r.request_id for r in store.iter_records(where)]
    assert got == [f"req-{n}" for n in range(14) if expected(n)]
    assert store.count(where) == len(got)


def test_when_filtering_by_time_then_since_is_inclusive_and_until_exclusive(
    store: AuditStore,
) -> None:
    early = store.append_many([event(n) for n in range(3)])
    time.sleep(0.01)
    late = store.append_many([event(n) for n in range(3, 6)])
    cut = late[0].timestamp
    assert [r.seq for r in store.iter_records(RecordFilter(since=cut))] == [4, 5, 6]
    assert [r.seq for r in store.iter_records(RecordFilter(until=cut))] == [1, 2, 3]
    naive = cut.astimezone(UTC).replace(tzinfo=None)
    assert store.count(RecordFilter(since=naive)) == 3
    assert early[-1].timestamp < cut
    assert store.count(RecordFilter(since=datetime.now(UTC) + timedelta(days=1))) == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_records SET verdict = 'allow' WHERE seq = 2",
        "DELETE FROM audit_records WHERE seq = 2",
        "DELETE FROM audit_records",
        "UPDATE audit_checkpoints SET hash = '00' WHERE seq = 3",
        "DELETE FROM audit_checkpoints",
        "UPDATE audit_head SET seq = 1",
        "DELETE FROM audit_head",
    ],
)
def test_when_rows_are_changed_in_sql_then_the_database_refuses(
    store: AuditStore, raw: RawDb, statement: str
) -> None:
    store.append_many([event(n) for n in range(3)])
    store.checkpoint(HMAC_KEY)
    with pytest.raises(Exception, match="append-only|only moves forward|cannot be deleted"):
        raw.execute(statement)
    assert store.count() == 3 and store.verify(HMAC_KEY).ok


@pytest.mark.postgres
def test_when_a_postgres_table_is_truncated_then_the_database_refuses(pg_dsn: str) -> None:
    with open_store(pg_dsn) as store:
        store.append(event())
        for table in ("audit_records", "audit_checkpoints", "audit_head"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                RawDb(pg_dsn).execute(f"TRUNCATE {table}")
        assert store.count() == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"content": {"stdout": f"token={KEY}"}},
        {"details": {"egress": [{"headers": {"authorization": f"Bearer {KEY}"}}]}},
        {"details": {KEY: 1}},
        {"key_name": KEY},
        {"client": KEY},
    ],
)
def test_when_an_event_holds_an_api_key_then_it_is_refused_and_nothing_is_written(
    store: AuditStore, fields: dict[str, object]
) -> None:
    store.append(event(1))
    with pytest.raises(AuditRejected, match="API key") as caught:
        store.append(event(2, **fields))
    assert KEY not in str(caught.value)
    with pytest.raises(AuditRejected):
        store.append_many([event(3), event(4, **fields)])
    assert store.count() == 1 and store.head().seq == 1


@pytest.mark.parametrize("text", ["sg_short", "sg_" + "a" * 19, "my_sg_prefix", "sg-" + "a" * 40])
def test_when_text_only_resembles_a_key_then_it_is_stored(store: AuditStore, text: str) -> None:
    assert store.append(event(content={"code": text})).content["code"] == text


def test_when_a_store_was_sent_keys_then_no_key_is_anywhere_in_its_database(
    store: AuditStore, dsn: str, raw: RawDb
) -> None:
    for n in range(5):
        with pytest.raises(AuditRejected):
            store.append(event(n, content={"code": f"api_key = '{KEY}'"}))
        store.append(event(n, content={"code": EventGuard().scrub(f"api_key = '{KEY}'")}))
    secret = KEY[3:]
    if raw.is_pg:
        dump = raw.execute("SELECT string_agg(r::text, ' ') FROM audit_records r")[0][0]
        assert secret not in dump and "sg_[REDACTED]" in dump
    else:
        path = Path(dsn[len("sqlite://") :])
        for part in (path, path.with_name(path.name + "-wal")):
            if part.exists():
                assert secret.encode() not in part.read_bytes()
    assert store.verify(HMAC_KEY).ok


def test_when_an_event_is_too_large_then_it_is_refused(store: AuditStore) -> None:
    with pytest.raises(AuditRejected, match="over the"):
        store.append(event(content={"stdout": "x" * 300_000}))
    assert store.count() == 0


def test_when_details_hold_nan_then_refused(store: AuditStore) -> None:
    with pytest.raises(AuditRejected, match="number"):
        store.append(event(details={"score": float("nan")}))


def test_when_checkpointing_on_demand_then_the_head_is_signed_once(store: AuditStore) -> None:
    with pytest.raises(Exception, match="empty"):
        store.checkpoint(HMAC_KEY)
    store.append_many([event(n) for n in range(4)])
    cp = store.checkpoint(HMAC_KEY)
    assert (cp.seq, cp.hash, cp.reason) == (4, store.head().hash, "manual")
    assert store.checkpoint(HMAC_KEY) == cp
    assert list(store.iter_checkpoints()) == [cp]
    assert store.last_checkpoint(at_or_before=3) is None
    assert store.last_checkpoint(at_or_before=10) == cp


def test_when_checkpoints_are_periodic_then_every_nth_record_is_signed(
    make_store: Callable[..., AuditStore],
) -> None:
    store = make_store(hmac_key=HMAC_KEY, checkpoint_every=5)
    for n in range(12):
        store.append(event(n))
    store.append_many([event(n) for n in range(6)])
    assert [cp.seq for cp in store.iter_checkpoints()] == [5, 10, 18]
    report = store.verify(HMAC_KEY)
    assert report.ok and report.checkpoints == 3 and report.authenticated_through == 18


def test_when_checkpoints_are_timed_then_a_quiet_log_is_still_signed(
    make_store: Callable[..., AuditStore],
) -> None:
    store = make_store(hmac_key=HMAC_KEY, checkpoint_every=0, checkpoint_interval=0.2)
    store.append(event(1))
    time.sleep(0.25)
    store.append(event(2))
    store.append(event(3))
    assert [cp.seq for cp in store.iter_checkpoints()] == [2]


def test_when_the_hmac_key_is_short_then_the_store_refuses_it(
    make_store: Callable[..., AuditStore],
) -> None:
    with pytest.raises(Exception, match="at least 16 bytes"):
        make_store(hmac_key=b"short")


def test_when_canonical_form_is_built_then_it_is_sorted_compact_utf8() -> None:
    assert canonical({"b": 1, "a": {"ü": "é", "c": None}}) == '{"a":{"c":null,"ü":"é"},"b":1}'


def test_when_a_sqlite_log_is_created_then_only_its_owner_can_read_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    with open_store(f"sqlite://{path}") as store:
        store.append(event())
        modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes["audit.db"] == 0o600 and modes["audit.db-wal"] == 0o600, modes
