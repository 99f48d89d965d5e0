"""Records as OCSF events, for SIEMs that speak the Open Cybersecurity Schema Framework.

Class: OCSF 1.6.0 "API Activity" (class_uid 6003, category 6 Application Activity), with the
Security Control profile. Why this class: every Sandgate record is a call on Sandgate's API
(an agent's /execute or /screen, a key or policy change) with an actor (the API key), a
source endpoint (the client) and an outcome a control decided (allow, redact, block); API
Activity carries exactly those, and the profile carries the control's verdict. Detection
Finding (2004) would fit only blocks, and would split one log across two classes.

    record field        OCSF attribute
    seq                 metadata.sequence
    id                  metadata.uid
    time                time (epoch ms), metadata.original_time (as stored)
    tenant              metadata.tenant_uid
    action              api.operation, activity_name; activity_id (key.create 1 Create,
                        key.revoke 4 Delete, policy.load 3 Update, else 99 Other)
    key_id, key_name    actor.user.uid, actor.user.name (no key: actor.app_name "sandgate")
    client              src_endpoint.ip (or .name when not an IP; "internal" when absent)
    request_id          api.request.uid
    verdict             action_id/action and disposition_id/disposition (allow 1/1 Allowed,
                        redact 1 Allowed/11 Corrected, block or deny 2 Denied/2 Blocked)
    status              status_detail; status_id 1 Success unless denied, blocked or an error
    policy_name/hash    policy.name, policy.uid
    content, details,   unmapped.content, unmapped.details, unmapped.prev_hash,
    prev_hash, hash     unmapped.hash
    (whole record)      raw_data: the record's JSONL line, so the event re-verifies
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sandgate.audit.base import AuditRecord
from sandgate.audit.chain import canonical

__all__ = ["OCSF_VERSION", "to_ocsf"]

OCSF_VERSION = "1.6.0"
CLASS_UID = 6003
CATEGORY_UID = 6
_ACTIVITIES = {
    "key.create": (1, "Create"),
    "key.revoke": (4, "Delete"),
    "policy.load": (3, "Update"),
}
_ALLOWED = {"allow", "ok"}
_DENIED = {"block", "deny", "denied", "refused", "rejected"}
_FAILED_STATUS = {"error", "sandbox_error"}


def _control(verdict: str | None) -> dict[str, Any]:
    if verdict in _ALLOWED:
        return {"action_id": 1, "action": "Allowed", "disposition_id": 1, "disposition": "Allowed"}
    if verdict == "redact":
        return {
            "action_id": 1,
            "action": "Allowed",
            "disposition_id": 11,
            "disposition": "Corrected",
        }
    if verdict in _DENIED:
        return {"action_id": 2, "action": "Denied", "disposition_id": 2, "disposition": "Blocked"}
    return {}


def _endpoint(client: str | None) -> dict[str, Any]:
    if client is None:
        return {"name": "internal"}
    try:
        return {"ip": str(ipaddress.ip_address(client))}
    except ValueError:
        return {"name": client}


def _actor(record: AuditRecord) -> dict[str, Any]:
    if record.key_id is None and record.key_name is None:
        return {"app_name": "sandgate"}
    user = {k: v for k, v in (("uid", record.key_id), ("name", record.key_name)) if v is not None}
    return {"user": user}


def to_ocsf(record: AuditRecord) -> dict[str, Any]:
    """The record as an OCSF 1.6.0 API Activity event (a plain JSON-ready dict)."""
    activity_id, activity_name = _ACTIVITIES.get(record.action, (99, record.action))
    control = _control(record.verdict)
    failed = control.get("action_id") == 2 or record.status in _FAILED_STATUS
    metadata: dict[str, Any] = {
        "version": OCSF_VERSION,
        "product": {"name": "Sandgate", "vendor_name": "Sandgate"},
        "profiles": ["security_control"],
        "log_name": "sandgate.audit",
        "uid": record.id,
        "sequence": record.seq,
        "original_time": record.time,
    }
    if record.tenant is not None:
        metadata["tenant_uid"] = record.tenant
    api: dict[str, Any] = {"operation": record.action, "service": {"name": "sandgate"}}
    if record.request_id is not None:
        api["request"] = {"uid": record.request_id}
    event: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "API Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Application Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": CLASS_UID * 100 + activity_id,
        "severity_id": 1,
        "severity": "Informational",
        "time": int(record.timestamp.timestamp() * 1000),
        "metadata": metadata,
        "actor": _actor(record),
        "api": api,
        "src_endpoint": _endpoint(record.client),
        "status_id": 2 if failed else 1,
        "status": "Failure" if failed else "Success",
        **control,
        "message": f"{record.action} {record.verdict or record.status or ''}".strip(),
        "raw_data": canonical(record.model_dump()),
        "unmapped": {
            "content": record.content,
            "details": record.details,
            "prev_hash": record.prev_hash,
            "hash": record.hash,
        },
    }
    if record.status is not None:
        event["status_detail"] = record.status
    if record.policy_name is not None or record.policy_hash is not None:
        policy = {"name": record.policy_name, "uid": record.policy_hash}
        event["policy"] = {k: v for k, v in policy.items() if v is not None}
    return event
