"""Whether one policy is at least as strict as another, and if not, where it is looser.

A request may name a policy other than its key's bound one only if that policy is at least as
strict everywhere: every limit at most the bound one's; languages and images subsets (a missing
`images` counts as the default image of each allowed language); every egress entry
already allowed by the bound allowlist (and every bound deny entry kept); on every screening
stage, at least the bound detectors, an action at least as severe (allow < redact < block) for
every finding type either names, thresholds no higher, and the bound extra rules kept; and an
audit that keeps at least as much, for at least as long; sessions no more, longer or larger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import BaseModel

from guards.base import Stage
from guards.config import StageConfig
from sandbox.egress.rules import Allowlist, parse_rule
from sandgate.policy.schema import Network, Policy

__all__ = ["looser_points"]

_AUDIT_RANK = {"none": 0, "redacted": 1, "full": 2}


def _caps(section: str, req: BaseModel, bound: BaseModel) -> list[str]:
    """Every numeric cap of a section that `req` sets higher than `bound`."""
    out = []
    for name in type(bound).model_fields:
        mine, theirs = getattr(req, name), getattr(bound, name)
        if mine > theirs:
            out.append(f"{section}.{name} {mine} > {theirs}")
    return out


def _covered(entry: str, allow: Allowlist, entries: list[str]) -> bool:
    rule = parse_rule(entry)
    if rule.wildcard:  # only the same or a broader wildcard covers a wildcard
        return any(
            (other := parse_rule(e)).wildcard
            and other.port == rule.port
            and (rule.host == other.host or rule.host.endswith("." + other.host))
            for e in entries
        )
    return allow.check(rule.host, rule.port).allowed


def _network(req: Network, bound: Network) -> list[str]:
    if not req.egress:
        return []  # no network at all: the strictest, whatever the caps say
    allow = Allowlist(bound.egress)
    out = [
        f"network.egress {e!r} is not allowed by the bound policy"
        for e in req.egress
        if not _covered(e, allow, bound.egress)
    ]
    out += [f"network.deny drops {e!r}" for e in bound.deny if e not in req.deny]
    if req.max_connections > bound.max_connections:
        out.append(f"network.max_connections {req.max_connections} > {bound.max_connections}")
    if req.max_bytes > bound.max_bytes:
        out.append(f"network.max_bytes {req.max_bytes} > {bound.max_bytes}")
    return out


def _stage(
    stage: Stage, req: StageConfig, bound: StageConfig, producers: Mapping[str, set[str]]
) -> list[str]:
    where = f"screening.{stage.value}"
    out = [
        f"{where}.detectors drops {d!r}"
        for d in bound.detectors_for(stage)
        if d not in req.detectors_for(stage)
    ]
    if bound.entities is not None and (
        req.entities is not None and not set(bound.entities) <= set(req.entities)
    ):
        out.append(f"{where}.entities drops {sorted(set(bound.entities) - set(req.entities))}")
    if bound.entities is None and req.entities is not None:
        out.append(f"{where}.entities narrows 'every type' to a list")
    named = set(bound.actions) | set(req.actions)
    for detector in sorted(set(bound.detectors_for(stage)) | set(bound.detector_actions)):
        # Compare only the types this detector can report, plus its fallback for the rest.
        kinds = sorted(k for k in named if detector in producers.get(k, ()))
        for kind in [*kinds, "*"]:
            mine, theirs = req.action_for(detector, kind), bound.action_for(detector, kind)
            if mine.rank < theirs.rank:
                label = "other types" if kind == "*" else kind
                out.append(
                    f"{where}: {detector} {label} {mine.value} is weaker than {theirs.value}"
                )
    if req.default_action.rank < bound.default_action.rank:
        out.append(
            f"{where}.default_action {req.default_action.value} < {bound.default_action.value}"
        )
    for kind in sorted(set(bound.thresholds) | set(req.thresholds) | {"*"}):
        mine_t = req.threshold_for(kind)
        theirs_t = bound.threshold_for(kind)
        if mine_t > theirs_t:
            out.append(f"{where}: threshold for {kind} {mine_t} > {theirs_t}")
    if req.max_length > bound.max_length:
        out.append(f"{where}.max_length {req.max_length} > {bound.max_length}")
    return out


def looser_points(
    req: Policy, bound: Policy, producers: Mapping[str, Iterable[str]] | None = None
) -> list[str]:
    """Every way `req` is looser than `bound`; empty when it is at least as strict.

    `producers` maps a finding type to the detectors that can report it (from the screener);
    the two policies' own extra secret patterns and injection rules are added to it.
    """
    reporters: dict[str, set[str]] = {k: set(v) for k, v in (producers or {}).items()}
    for policy in (req, bound):
        for spec in policy.screening.secret_patterns:
            reporters.setdefault(spec.supported_entity, set()).add("secrets")
        for rule in policy.screening.injection_rules:
            reporters.setdefault(rule.type, set()).add("injection")
    out = _caps("limits", req.limits, bound.limits) + _caps(
        "sessions", req.sessions, bound.sessions
    )
    out += [f"languages adds {lang!r}" for lang in req.languages if lang not in bound.languages]
    bound_images = bound.allowed_images()
    out += [f"images adds {i!r}" for i in req.allowed_images() if i not in bound_images]
    out += _network(req.network, bound.network)
    for stage in Stage:
        out += _stage(
            stage, req.screening.for_stage(stage), bound.screening.for_stage(stage), reporters
        )
    for extra in ("secret_patterns", "injection_rules"):
        kept = getattr(req.screening, extra)
        out += [
            f"screening.{extra} drops {r.name!r}"
            for r in getattr(bound.screening, extra)
            if r not in kept
        ]
    if set(bound.screening.nemo.injections) - set(req.screening.nemo.injections):
        out.append("screening.nemo.injections drops rule sets")
    if _AUDIT_RANK[req.audit.content] < _AUDIT_RANK[bound.audit.content]:
        out.append(f"audit.content {req.audit.content} keeps less than {bound.audit.content}")
    if req.audit.retention_days < bound.audit.retention_days:
        out.append(
            f"audit.retention_days {req.audit.retention_days} < {bound.audit.retention_days}"
        )
    return out
