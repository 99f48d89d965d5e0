"""Exports on both backends: formats, slices that verify, tenant isolation, constant memory."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandgate.audit import AuditStore, RecordFilter
from sandgate.audit.export import CSV_FIELDS, FORMATS, Format, export, export_lines, verify_export
from sandgate.audit.ocsf import to_ocsf
from tests.audit.helpers import HMAC_KEY, event, run_child

# Peak RSS is VmHWM, the high-water mark of this program's own memory: ru_maxrss would carry
# over the parent's size from before exec (a big test process would hide any growth).
EXPORTER = """
import sys
from sandgate.audit import RecordFilter, open_store
from sandgate.audit.export import export
dsn, fmt, max_seq, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open_store(dsn) as store, open(path, "w", encoding="utf-8", newline="") as out:
    count = export(store, out, fmt, RecordFilter(max_seq=max_seq))
with open("/proc/self/status") as status:
    peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(count, peak_kib)
"""


def _lines(store: AuditStore, fmt: Format, where: RecordFilter | None = None) -> list[str]:
    return list(export_lines(store, fmt, where))


@pytest.mark.parametrize("fmt", FORMATS)
def test_when_the_whole_log_is_exported_then_it_reverifies(store: AuditStore, fmt: Format) -> None:
    store.append_many([event(n) for n in range(9)])
    store.checkpoint(HMAC_KEY)
    lines = _lines(store, fmt)
    report = verify_export(lines, fmt, hmac_key=HMAC_KEY)
    assert report.ok and report.count == 9 and report.anchored, report.summary()
    if fmt == "jsonl":
        assert report.authenticated_through == 9
        assert json.loads(lines[-1])["checkpoint"]["seq"] == 9


@pytest.mark.parametrize("fmt", FORMATS)
def test_when_an_exported_line_is_edited_then_the_export_names_it(
    store: AuditStore, fmt: Format
) -> None:
    store.append_many([event(n) for n in range(6)])
    lines = _lines(store, fmt)
    index = 4 if fmt == "csv" else 3  # the record with seq 4 (csv has a header line)
    assert "print(3)" in lines[index]
    lines[index] = lines[index].replace("print(3)", "print(4)")
    report = verify_export(lines, fmt)
    assert not report.ok and report.bad_seq == 4


def test_when_an_exported_line_is_dropped_then_the_export_names_the_gap(
    store: AuditStore,
) -> None:
    store.append_many([event(n) for n in range(6)])
    lines = _lines(store, "jsonl")
    del lines[2]
    report = verify_export(lines, "jsonl")
    assert not report.ok and report.bad_seq == 3 and "missing" in (report.reason or "")


def test_when_a_slice_is_exported_then_it_verifies_from_its_checkpoint(
    make_store: Callable[..., AuditStore],
) -> None:
    store = make_store(hmac_key=HMAC_KEY, checkpoint_every=5)
    for n in range(7):
        store.append(event(n))
    time.sleep(0.01)
    later = [store.append(event(n)) for n in range(7, 13)]
    lines = _lines(store, "jsonl", RecordFilter(since=later[0].timestamp))
    first = json.loads(lines[0])
    assert first["checkpoint"]["seq"] == 5  # the anchor at or before seq 8, the first match
    assert json.loads(lines[1])["seq"] == 6
    report = verify_export(lines, "jsonl", hmac_key=HMAC_KEY)
    assert report.ok and report.anchored and report.first_seq == 6 and report.last_seq == 13
    assert report.authenticated_through == 10
    wrong = verify_export(lines, "jsonl", hmac_key=b"another-key-of-sufficient-length")
    assert not wrong.ok and "bad HMAC" in (wrong.reason or "")
    unanchored = verify_export(lines[1:], "jsonl", hmac_key=HMAC_KEY)
    assert unanchored.ok and not unanchored.anchored


def test_when_exporting_one_tenant_then_no_other_tenant_appears(store: AuditStore) -> None:
    store.append_many([event(n) for n in range(30)])
    store.checkpoint(HMAC_KEY)  # signs seq 30, a globex record (n=29 is not a multiple of 3)
    lines = _lines(store, "jsonl", RecordFilter(tenant="globex"))
    items = [json.loads(line) for line in lines]
    records = [i for i in items if "checkpoint" not in i]
    assert [r["request_id"] for r in records] == [f"req-{n}" for n in range(0, 30, 3)]
    assert "acme" not in "".join(lines)
    assert all("checkpoint" not in i or i["checkpoint"]["seq"] in {r["seq"] for r in records}
               for i in items)  # fmt: skip
    assert verify_export(lines, "jsonl", hmac_key=HMAC_KEY, filtered=True).ok
    as_whole = verify_export(lines, "jsonl", hmac_key=HMAC_KEY)
    assert not as_whole.ok and "missing" in (as_whole.reason or "")


def test_when_exported_as_csv_then_the_columns_are_the_documented_ones(store: AuditStore) -> None:
    store.append(event(1, tenant=None, content={"code": 'a,"b"\nc'}))
    rows = list(csv.DictReader(io.StringIO("".join(_lines(store, "csv")))))
    assert tuple(rows[0]) == CSV_FIELDS
    assert rows[0]["tenant"] == "" and json.loads(rows[0]["content"]) == {"code": 'a,"b"\nc'}
    assert json.loads(rows[0]["details"])["wall_ms"] == 11


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"verdict": "allow"}, {"action_id": 1, "disposition_id": 1, "status_id": 1}),
        ({"verdict": "redact"}, {"action_id": 1, "disposition_id": 11, "status_id": 1}),
        ({"verdict": "block"}, {"action_id": 2, "disposition_id": 2, "status_id": 2}),
        ({"verdict": None, "status": "error"}, {"status_id": 2, "status_detail": "error"}),
        ({"action": "key.create"}, {"activity_id": 1, "type_uid": 600301}),
        ({"action": "key.revoke"}, {"activity_id": 4, "type_uid": 600304}),
        ({"action": "screen"}, {"activity_id": 99, "activity_name": "screen"}),
    ],
)
def test_when_mapped_to_ocsf_then_api_activity_fields_follow_the_record(
    store: AuditStore, fields: dict[str, object], expected: dict[str, object]
) -> None:
    rec = store.append(event(0, **fields))
    ocsf = to_ocsf(rec)
    assert ocsf["class_uid"] == 6003 and ocsf["category_uid"] == 6
    assert ocsf["type_uid"] == 600300 + ocsf["activity_id"]
    assert ocsf["actor"]["user"] == {"uid": rec.key_id, "name": rec.key_name}
    assert ocsf["src_endpoint"] == {"ip": "127.0.0.1"}
    assert ocsf["metadata"]["uid"] == rec.id and ocsf["metadata"]["tenant_uid"] == rec.tenant
    assert ocsf["policy"] == {"name": "default", "uid": rec.policy_hash}
    assert {k: ocsf.get(k) for k in expected} == expected


def test_when_a_system_event_is_mapped_to_ocsf_then_the_actor_is_sandgate(
    store: AuditStore,
) -> None:
    rec = store.append(event(0, action="policy.load", key_id=None, key_name=None, client=None))
    ocsf = to_ocsf(rec)
    assert ocsf["actor"] == {"app_name": "sandgate"} and ocsf["activity_id"] == 3
    assert ocsf["src_endpoint"] == {"name": "internal"}


def test_when_an_unknown_format_is_asked_then_refused(store: AuditStore) -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        list(export_lines(store, "xml"))  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_when_100k_records_are_exported_then_memory_stays_flat(
    store: AuditStore, dsn: str, tmp_path: Path
) -> None:
    padding = "p" * 700  # ~1 KB per record: holding 90,000 more would cost far over 16 MiB
    for start in range(0, 100_000, 2_000):
        store.append_many(
            [event(n, details={"n": n, "pad": padding}) for n in range(start, start + 2_000)]
        )
    assert store.count() == 100_000
    for fmt in ("jsonl", "csv"):
        peaks = {}
        for size in (10_000, 100_000):
            out = tmp_path / f"export-{size}.{fmt}"
            count, peak_kib = map(int, run_child(EXPORTER, dsn, fmt, str(size), str(out)).split())
            assert count == size
            peaks[size] = peak_kib
        growth_mib = (peaks[100_000] - peaks[10_000]) / 1024
        assert growth_mib < 16, f"{fmt}: peak RSS grew {growth_mib:.1f} MiB: {peaks} KiB"
        with out.open(encoding="utf-8", newline="") as lines:
            report = verify_export(lines, fmt)
        assert report.ok and report.count == 100_000, report.summary()


def test_when_export_writes_to_a_file_then_it_counts_records_not_checkpoints(
    store: AuditStore,
) -> None:
    store.append_many([event(n) for n in range(3)])
    store.checkpoint(HMAC_KEY)
    out = io.StringIO()
    ticks: list[int] = []
    assert export(store, out, "jsonl", progress=ticks.append) == 3
    assert ticks == [1, 1, 1] and out.getvalue().count("\n") == 4
