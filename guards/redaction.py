"""Replacing findings in the text as sent, with presidio-anonymizer's operators.

`replace` writes `<TYPE>`, `mask` writes one `*` per character, and `hash` writes Presidio's
salted SHA-256 of the value, salted with HMAC-SHA256(hash secret, tenant): the same value
gets the same pseudonym within a tenant and a different one in another tenant, and nobody
without the secret can test a guess. Overlapping findings are resolved by the anonymizer
(the larger or higher-scoring span wins).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from guards.base import Finding, Operator
from guards.config import StageConfig
from guards.presidio_engines import anonymizer

__all__ = ["redact", "tenant_salt"]

_MASK_ALL = 1 << 30


def tenant_salt(secret: bytes, tenant: str) -> bytes:
    """The per-tenant salt of the `hash` operator: HMAC-SHA256(secret, tenant)."""
    return hmac.new(secret, tenant.encode("utf-8"), hashlib.sha256).digest()


def _operator(kind: Operator, entity: str, salt: bytes) -> Any:
    from presidio_anonymizer.entities import OperatorConfig

    if kind is Operator.REPLACE:
        return OperatorConfig("replace", {"new_value": f"<{entity}>"})
    if kind is Operator.MASK:
        params = {"masking_char": "*", "chars_to_mask": _MASK_ALL, "from_end": False}
        return OperatorConfig("mask", params)
    return OperatorConfig("hash", {"hash_type": "sha256", "salt": salt})


def redact(text: str, findings: Sequence[Finding], config: StageConfig, salt: bytes) -> str:
    """`text` with each finding's span replaced per the stage's operator for its type."""
    from presidio_anonymizer.entities import RecognizerResult

    spans = [f for f in findings if f.end > f.start]
    if not spans:
        return text
    results = [RecognizerResult(f.type, f.start, f.end, f.score) for f in spans]
    operators = {f.type: _operator(config.operator_for(f.type), f.type, salt) for f in spans}
    return str(
        anonymizer().anonymize(text=text, analyzer_results=results, operators=operators).text
    )
