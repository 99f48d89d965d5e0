"""Streaming the log out for auditors and SIEMs, and re-verifying what was exported.

Formats (each one line per item, UTF-8, `\\n` line ends; nothing is held beyond one batch):

    jsonl   one record per line, exactly its canonical form plus "hash" (see `chain`), and
            checkpoint lines `{"checkpoint": {seq, hash, time, reason, mac}}` right after the
            record they sign (and, for a contiguous slice, the anchor checkpoint first)
    csv     a header, then one row per record in `CSV_FIELDS` order; absent values are empty
            cells, `content` and `details` are canonical JSON text in one cell each; no
            checkpoints (SIEM ingestion), but the chain fields let the rows re-verify
    ocsf    one OCSF 1.6.0 API Activity event per line (see `sandgate.audit.ocsf`); its
            `raw_data` holds the record's jsonl line, so OCSF exports re-verify too

A contiguous slice (filtered by time or seq only) starts right after the newest checkpoint
at or before its first matching record, so it verifies from that signed anchor: a few records
before `since` may be included. Filtered slices (key, tenant, action, verdict) have gaps by
design; `verify_export(..., filtered=True)` checks each record's own hash instead.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import closing
from typing import Any, Literal, TextIO

from pydantic import ValidationError

from sandgate.audit._sql import COLUMNS
from sandgate.audit.base import (
    AuditRecord,
    AuditStore,
    Checkpoint,
    RecordFilter,
    VerifyReport,
)
from sandgate.audit.chain import canonical
from sandgate.audit.ocsf import to_ocsf
from sandgate.audit.verifier import ChainVerifier, merge

__all__ = [
    "CSV_FIELDS",
    "FORMATS",
    "MEDIA_TYPES",
    "Format",
    "export",
    "export_items",
    "export_lines",
    "verify_export",
]

Format = Literal["jsonl", "csv", "ocsf"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "ocsf")
CSV_FIELDS: tuple[str, ...] = COLUMNS
MEDIA_TYPES: dict[Format, str] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "ocsf": "application/x-ndjson",
}


def export_items(
    store: AuditStore, where: RecordFilter | None = None, *, anchor: bool = True
) -> Generator[AuditRecord | Checkpoint]:
    """Matching records oldest first, each followed by the checkpoints that sign it.

    For a contiguous filter with `anchor`, the slice is widened back to start right after the
    newest checkpoint at or before its first record, and that checkpoint comes first.
    """
    where = where or RecordFilter()
    if anchor and where.contiguous:
        with closing(store.iter_records(where, batch_size=1)) as probe:
            first = next(probe, None)
        if first is None:
            return
        cp = store.last_checkpoint(at_or_before=first.seq)
        if cp is not None and cp.seq < first.seq:
            yield cp
            where = where.model_copy(update={"since": None, "min_seq": cp.seq + 1})
    records = store.iter_records(where)
    checkpoints = store.iter_checkpoints(min_seq=where.min_seq, max_seq=where.max_seq)
    last_seq = None
    with closing(records), closing(checkpoints):
        for item in merge(records, checkpoints):
            if isinstance(item, Checkpoint):
                if item.seq == last_seq:
                    yield item
            else:
                last_seq = item.seq
                yield item


def _csv_line(values: Iterable[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()


def _csv_cells(record: AuditRecord) -> list[Any]:
    values = record.model_dump()
    values["content"] = canonical(values["content"])
    values["details"] = canonical(values["details"])
    return ["" if values[name] is None else values[name] for name in CSV_FIELDS]


def _render(item: AuditRecord | Checkpoint, fmt: Format) -> str | None:
    """One item as a line of `fmt`, or None when the format leaves it out."""
    if isinstance(item, Checkpoint):
        return canonical({"checkpoint": item.model_dump()}) + "\n" if fmt == "jsonl" else None
    if fmt == "jsonl":
        return canonical(item.model_dump()) + "\n"
    if fmt == "csv":
        return _csv_line(_csv_cells(item))
    return canonical(to_ocsf(item)) + "\n"


def _items(
    store: AuditStore, fmt: Format, where: RecordFilter | None, anchor: bool
) -> closing[Generator[AuditRecord | Checkpoint]]:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    # Only jsonl carries checkpoints, so only jsonl widens a slice back to its anchor.
    return closing(export_items(store, where, anchor=anchor and fmt == "jsonl"))


def export_lines(
    store: AuditStore,
    fmt: Format = "jsonl",
    where: RecordFilter | None = None,
    *,
    anchor: bool = True,
) -> Iterator[str]:
    """The export as text lines, for a streaming HTTP response or a file."""
    with _items(store, fmt, where, anchor) as items:
        if fmt == "csv":
            yield _csv_line(CSV_FIELDS)
        for item in items:
            line = _render(item, fmt)
            if line is not None:
                yield line


def export(
    store: AuditStore,
    out: TextIO,
    fmt: Format = "jsonl",
    where: RecordFilter | None = None,
    *,
    anchor: bool = True,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the export to `out`; returns the number of records. `progress(1)` per record."""
    count = 0
    with _items(store, fmt, where, anchor) as items:
        if fmt == "csv":
            out.write(_csv_line(CSV_FIELDS))
        for item in items:
            line = _render(item, fmt)
            if line is not None:
                out.write(line)
            if isinstance(item, AuditRecord):
                count += 1
                if progress is not None:
                    progress(1)
    return count


def _parse(fmt: Format, lines: Iterable[str]) -> Iterator[AuditRecord | Checkpoint]:
    if fmt == "csv":
        reader = csv.DictReader(lines)
        if tuple(reader.fieldnames or ()) != CSV_FIELDS:
            raise ValueError(f"the CSV header is not the export's: {', '.join(CSV_FIELDS)}")
        for row in reader:
            values: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items()}
            values["seq"] = int(row["seq"])
            values["content"] = json.loads(row["content"])
            values["details"] = json.loads(row["details"])
            yield AuditRecord.model_validate(values)
        return
    for line in lines:
        if not line.strip():
            continue
        obj = json.loads(line)
        if fmt == "ocsf":
            yield AuditRecord.model_validate_json(obj["raw_data"])
        elif "checkpoint" in obj:
            yield Checkpoint.model_validate(obj["checkpoint"])
        else:
            yield AuditRecord.model_validate(obj)


def verify_export(
    lines: Iterable[str],
    fmt: Format = "jsonl",
    *,
    hmac_key: bytes | None = None,
    filtered: bool = False,
) -> VerifyReport:
    """Verify an exported slice, streaming: hashes, links, and checkpoints (HMAC with a key)."""
    verifier = ChainVerifier(hmac_key, mode="filtered" if filtered else "slice")
    last_seq = 0
    try:
        for item in _parse(fmt, lines):
            verifier.feed(item)
            if verifier.failed:
                break
            last_seq = item.seq
    except (ValueError, KeyError, TypeError) as exc:
        detail = "invalid fields" if isinstance(exc, ValidationError) else type(exc).__name__
        verifier.fail(last_seq + 1, f"the line after seq {last_seq} is not a valid item ({detail})")
    return verifier.finish()
