"""Policies in force, one policy, and validation of a candidate file before it ships."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from sandgate.deps import CurrentKey, ServicesDep, require
from sandgate.errors import InvalidInput, NotFound, PayloadTooLarge
from sandgate.keys import ApiKey, Scope
from sandgate.policy.loader import policy_hash, resolve_text
from sandgate.policy.schema import NAME_PATTERN
from sandgate.policy.yamlsrc import MAX_POLICY_BYTES

__all__ = ["router"]

router = APIRouter(prefix="/policies", tags=["policies"])
Admin = Annotated[ApiKey, Depends(require(Scope.POLICY_ADMIN))]


@router.get("", summary="The policies in force, with hashes, and any rejected reload.")
async def list_policies(services: ServicesDep, _key: Admin) -> dict[str, Any]:
    """Every loaded policy's name, hash, parent and load time; bindings; the last rejection."""
    registry = services.policies
    current = registry.current
    rejected = registry.rejected
    return {
        "loaded_at": current.loaded_at,
        "policies": [p.summary() for p in current.policies.values()],
        "bindings": current.bindings.model_dump(),
        "rejected_reload": None
        if rejected is None
        else {"at": rejected.at, "issues": [i.as_dict() for i in rejected.issues]},
    }


@router.get("/{name}", summary="One resolved policy.")
async def get_policy(name: str, services: ServicesDep, _key: Admin) -> dict[str, Any]:
    """The policy after `extends`, as the service applies it."""
    resolved = services.policies.current.policies.get(name)
    if resolved is None:
        raise NotFound(f"no policy named {name!r}")
    return {**resolved.summary(), "policy": resolved.policy.model_dump(mode="json")}


@router.post("/validate", summary="Validate a policy file (YAML body) against the running set.")
async def validate(
    request: Request, services: ServicesDep, _key: CurrentKey, name: str = "candidate"
) -> dict[str, Any]:
    """Send the file as the body (any content type). Answers the problems, each with line,
    column and field path; `extends` resolves against the loaded policies."""
    body = await request.body()
    if len(body) > MAX_POLICY_BYTES:
        raise PayloadTooLarge(f"policies are at most {MAX_POLICY_BYTES} bytes")
    if not re.match(NAME_PATTERN, name):
        raise InvalidInput(f"name must match {NAME_PATTERN}")
    policy, issues = resolve_text(body, name, services.policies.current.documents)
    return {
        "valid": not issues,
        "issues": [i.as_dict() for i in issues],
        "messages": [str(i) for i in issues],
        "hash": policy_hash(policy) if policy else None,
        "policy": policy.model_dump(mode="json") if policy else None,
    }
