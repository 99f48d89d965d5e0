"""`fit` makes any event storable: what the store's guard would refuse is scrubbed or cut with a
visible marker, never refused, and an event that already fits passes unchanged."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sandgate.audit.base import MAX_EVENT_BYTES, AuditEvent
from sandgate.audit.chain import canonical
from sandgate.audit.fit import MAX_ITEMS, fit
from sandgate.audit.guard import EventGuard

KEY = "sg_" + "Q" * 43
GUARD = EventGuard()

texts = st.text(max_size=300) | st.just(KEY) | st.just(f"path/{KEY}/x") | st.just("x" * 9000)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | texts,
    lambda inner: st.lists(inner, max_size=300) | st.dictionaries(texts, inner, max_size=8),
    max_leaves=400,
)


def _event(**fields: Any) -> AuditEvent:
    return AuditEvent.model_construct(
        **{
            "action": "execute",
            "verdict": None,
            "status": None,
            "tenant": None,
            "key_id": None,
            "key_name": None,
            "policy_name": None,
            "policy_hash": None,
            "request_id": None,
            "client": None,
            "content": {},
            "details": {},
            **fields,
        }
    )


@settings(max_examples=60, deadline=None)
@given(
    details=st.dictionaries(texts, json_values, max_size=6), content=st.dictionaries(texts, texts)
)
def test_when_an_event_holds_anything_then_the_fitted_one_is_accepted(
    details: dict[str, Any], content: dict[str, str]
) -> None:
    fitted = fit(_event(details=details, content=content, key_name=KEY * 10))
    GUARD.check(fitted)  # raises AuditRejected if the store would refuse it
    assert KEY not in canonical(fitted.model_dump())


def test_when_an_event_already_fits_then_it_is_unchanged() -> None:
    event = AuditEvent(
        action="screen", verdict="allow", content={"text": "hello"}, details={"n": [1, 2.5, None]}
    )
    assert fit(event) == event


def test_when_lists_and_strings_are_too_long_then_they_are_cut_with_markers() -> None:
    fitted = fit(_event(details={"findings": list(range(5000)), "note": "y" * 10_000}))
    findings = fitted.details["findings"]
    assert isinstance(findings, list) and len(findings) == MAX_ITEMS + 1
    assert findings[-1] == {"cut": 5000 - MAX_ITEMS}
    note = fitted.details["note"]
    assert isinstance(note, str) and note.endswith("chars]") and len(note) == 4096


def test_when_numbers_are_not_finite_then_they_become_strings() -> None:
    fitted = fit(_event(details={"a": math.inf, "b": math.nan}))
    assert fitted.details == {"a": "inf", "b": "nan"}


def test_when_the_record_is_too_large_then_the_largest_details_are_dropped_visibly() -> None:
    huge = {f"k{i}": ["z" * 4000] * 100 for i in range(3)}
    fitted = fit(_event(details=huge, content={"code": "c" * 4000}))
    assert len(canonical(fitted.model_dump()).encode()) < MAX_EVENT_BYTES
    dropped = [v for v in fitted.details.values() if isinstance(v, dict) and "cut" in v]
    assert dropped, fitted.details.keys()
