"""Making any event storable: what does not fit a record is scrubbed or cut, never refused.

An action that happened must be recorded, so the service never hands the store an event it
would refuse (see `sandgate.audit.guard`). `fit` applies, in order:
- every string anywhere (fields, content, details, dict keys) has key-shaped substrings
  replaced by `sg_[REDACTED]`;
- numbers JSON cannot carry (NaN, infinities) become strings;
- strings longer than their cap are cut with a marker `…[cut N chars]`, lists longer than
  `MAX_ITEMS` keep their head and end with `{"cut": N}`;
- if the record is still over the store's size limit, content excerpts are shortened, then
  dropped, then the largest details are replaced by a marker, until it fits.
Each step leaves a visible marker, so an auditor sees that something was cut and how much.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import JsonValue

from sandgate.audit.base import MAX_EVENT_BYTES, AuditEvent
from sandgate.audit.chain import canonical
from sandgate.audit.guard import EventGuard

__all__ = ["MAX_ITEMS", "MAX_STRING", "cut", "fit"]

MAX_STRING = 4096
MAX_ITEMS = 200
# Caps of the identity fields (`AuditEvent`'s max_length), in characters.
_FIELD_CAPS = {
    "verdict": 64,
    "status": 64,
    "tenant": 256,
    "key_id": 256,
    "key_name": 256,
    "policy_name": 256,
    "policy_hash": 128,
    "request_id": 128,
    "client": 256,
}
_guard = EventGuard()


def cut(text: str, limit: int = MAX_STRING) -> str:
    """`text` scrubbed of key-shaped strings and cut to `limit` characters with a marker."""
    text = _guard.scrub(text)
    if len(text) <= limit:
        return text
    marker = f"…[cut {len(text) - limit} chars]"
    return text[: max(0, limit - len(marker))] + marker


def _value(value: Any, limit: int) -> JsonValue:
    if isinstance(value, str):
        return cut(value, limit)
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {cut(str(k), 256): _value(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [_value(v, limit) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append({"cut": len(value) - MAX_ITEMS})
        return items
    return cut(str(value), limit)


def _size(fields: dict[str, Any]) -> int:
    return len(canonical(fields).encode())


def fit(event: AuditEvent, max_bytes: int = MAX_EVENT_BYTES) -> AuditEvent:
    """An event the store accepts, with the same facts as `event` or visibly cut ones."""
    fields: dict[str, Any] = event.model_dump()
    for name, cap in _FIELD_CAPS.items():
        if fields[name] is not None:
            fields[name] = cut(str(fields[name]), cap)
    fields["content"] = {cut(k, 256): cut(v) for k, v in fields["content"].items()}
    details = _value(fields["details"], MAX_STRING)
    assert isinstance(details, dict)
    fields["details"] = details
    budget = max_bytes - 1024  # room for what the store adds (seq, id, time, hashes)
    for limit in (1024, 256, 0):
        if _size(fields) <= budget:
            break
        fields["content"] = {k: cut(v, limit) for k, v in fields["content"].items() if limit}
    largest = sorted(details, key=lambda k: -len(canonical({"v": details[k]})))
    for name in largest:
        if _size(fields) <= budget:
            break
        size = len(canonical({"v": details[name]}))
        details[name] = {"cut": f"{size} bytes dropped: the record was over {max_bytes} bytes"}
    return AuditEvent.model_validate(fields)
