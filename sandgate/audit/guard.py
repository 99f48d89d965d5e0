"""The last line of defence against secrets in the log: refuse anything shaped like an API key.

Callers are expected to pass key ids and already-redacted excerpts; this check makes a slip
fail loudly (`AuditRejected`) instead of writing a key into an append-only log that cannot
be cleaned afterwards. `scrub` lets a caller redact keys from an excerpt before auditing it.
"""

from __future__ import annotations

import re

from sandgate.audit.base import MAX_EVENT_BYTES, AuditEvent, AuditRejected
from sandgate.audit.chain import canonical

__all__ = ["DEFAULT_KEY_PREFIX", "EventGuard"]

DEFAULT_KEY_PREFIX = "sg_"
# API keys are the prefix + urlsafe base64; 20 characters is far shorter than a real key
# and far longer than any identifier worth keeping.
_MIN_KEY_CHARS = 20


class EventGuard:
    """Refuses events that contain a key-shaped string or exceed the size limit."""

    def __init__(self, key_prefix: str = DEFAULT_KEY_PREFIX, max_bytes: int = MAX_EVENT_BYTES):
        if not key_prefix:
            raise ValueError("key_prefix must not be empty")
        self.max_bytes = max_bytes
        self._pattern = re.compile(re.escape(key_prefix) + rf"[A-Za-z0-9_\-]{{{_MIN_KEY_CHARS},}}")
        self._prefix = key_prefix

    def check(self, event: AuditEvent) -> None:
        """Raise `AuditRejected` if the event may not be stored; the message never echoes it."""
        try:
            text = canonical(event.model_dump())
        except ValueError as exc:  # NaN or Infinity somewhere in details
            raise AuditRejected("the event holds a number JSON cannot represent") from exc
        size = len(text.encode())
        if size > self.max_bytes:
            raise AuditRejected(f"the event is {size} bytes, over the {self.max_bytes} limit")
        match = self._pattern.search(text)
        if match is not None:
            field = _field_holding(event, self._pattern)
            raise AuditRejected(
                f"the event's {field} holds an API key ({self._prefix}...): pass key ids, "
                "and redact excerpts before auditing them"
            )

    def scrub(self, text: str) -> str:
        """`text` with every key-shaped substring replaced by `<prefix>[REDACTED]`."""
        return self._pattern.sub(self._prefix + "[REDACTED]", text)


def _field_holding(event: AuditEvent, pattern: re.Pattern[str]) -> str:
    """The name of the first field whose serialisation matches (for a useful error)."""
    for name, value in event.model_dump().items():
        if value is not None and pattern.search(canonical({"v": value})):
            return name
    return "content"
