"""Policies in force, one policy, and validation of a candidate file before it ships.

Every route needs the `policy:admin` scope. A candidate is parsed off the event loop, with its
size and nesting capped and within `VALIDATE_TIMEOUT_S`, so a hostile file cannot stall the
service. `validate` is not a policy name (`GET /policies/validate` is 405).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from starlette.convertors import Convertor, register_url_convertor

from sandgate.api.responses import errors
from sandgate.deps import ServicesDep, require
from sandgate.errors import InvalidInput, NotFound, PayloadTooLarge
from sandgate.keys import ApiKey, Scope
from sandgate.policy.loader import policy_hash, resolve_text
from sandgate.policy.schema import NAME_PATTERN
from sandgate.policy.yamlsrc import MAX_POLICY_BYTES

__all__ = ["router"]

VALIDATE_TIMEOUT_S = 5.0
router = APIRouter(prefix="/policies", tags=["policies"])
Admin = Annotated[ApiKey, Depends(require(Scope.POLICY_ADMIN))]


class _PolicyName(Convertor[str]):
    """A path segment naming a policy; `validate` is the validation route's, never a name."""

    regex = "(?!validate$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("policy_name", _PolicyName())


@router.get(
    "",
    name="policies.list",
    summary="The policies in force, with hashes, and any rejected reload.",
    responses=errors(403),
)
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


@router.get(
    "/{name:policy_name}",
    name="policies.get",
    summary="One resolved policy.",
    responses=errors(403, 404, 422),
)
async def get_policy(name: str, services: ServicesDep, _key: Admin) -> dict[str, Any]:
    """The policy after `extends`, as the service applies it."""
    resolved = services.policies.current.policies.get(name)
    if resolved is None:
        raise NotFound("no policy of that name is loaded")
    return {**resolved.summary(), "policy": resolved.policy.model_dump(mode="json")}


@router.post(
    "/validate",
    name="policies.validate",
    summary="Validate a policy file (YAML body) against the running set.",
    responses=errors(403, 413, 422),
)
async def validate(
    request: Request,
    services: ServicesDep,
    _key: Admin,
    name: Annotated[str, Query(pattern=NAME_PATTERN)] = "candidate",
) -> dict[str, Any]:
    """Send the file as the body (any content type). Answers the problems, each with line,
    column and field path; `extends` resolves against the loaded policies."""
    body = await request.body()
    if len(body) > MAX_POLICY_BYTES:
        raise PayloadTooLarge(f"policies are at most {MAX_POLICY_BYTES} bytes")
    documents = services.policies.current.documents
    try:
        with anyio.fail_after(VALIDATE_TIMEOUT_S):
            policy, issues = await anyio.to_thread.run_sync(
                resolve_text, body, name, documents, abandon_on_cancel=True
            )
    except TimeoutError:
        raise InvalidInput(
            f"the file took longer than {VALIDATE_TIMEOUT_S:g} s to validate; simplify it"
        ) from None
    return {
        "valid": not issues,
        "issues": [i.as_dict() for i in issues],
        "messages": [str(i) for i in issues],
        "hash": policy_hash(policy) if policy else None,
        "policy": policy.model_dump(mode="json") if policy else None,
    }
