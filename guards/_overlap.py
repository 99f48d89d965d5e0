"""Resolving detections of different types that cover the same characters."""

from __future__ import annotations

from guards.base import Detection

__all__ = ["drop_shadowed"]

# Identifiers found after their names ("account number: ..."): a phone pattern inside one is
# the same digits read with less reason, whatever the scores (a phone's context words include
# "number").
_NAMED = frozenset({"PASSPORT", "BANK_ACCOUNT", "ABA_ROUTING_NUMBER", "UK_SORT_CODE"})


def drop_shadowed(detections: list[Detection]) -> list[Detection]:
    """Drop a detection lying inside a higher-scoring one of another type.

    Presidio's phone recognizer also reports card numbers, SSNs and IPs as phone numbers at
    a lower score, and a GitHub token after the word "token" is also a bearer token: the
    more specific, higher-scoring finding is the one to keep. A phone number inside an
    identifier found after its name is dropped at any score.
    """
    kept: list[Detection] = []
    for group in _overlap_groups(detections):
        for item in group:
            shadowed = any(
                other.type != item.type
                and other.start <= item.start
                and item.end <= other.end
                and _beats(other, item)
                for other in group
            )
            if not shadowed:
                kept.append(item)
    return kept


def _beats(other: Detection, item: Detection) -> bool:
    """Whether `other`, around `item`, is the finding to keep."""
    if item.type == "PHONE_NUMBER" and other.type in _NAMED:
        return True
    if other.type == "PHONE_NUMBER" and item.type in _NAMED:
        return False
    return other.score > item.score


def _overlap_groups(detections: list[Detection]) -> list[list[Detection]]:
    """Detections split into runs that overlap each other (a sweep, not all pairs)."""
    groups: list[list[Detection]] = []
    reach = -1
    for item in sorted(detections, key=lambda d: (d.start, -d.end)):
        if item.start >= reach:
            groups.append([])
        groups[-1].append(item)
        reach = max(reach, item.end)
    return groups
