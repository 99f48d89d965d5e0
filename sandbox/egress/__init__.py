"""Egress for sandboxes: allowlist rules, the per-execution proxy and the in-sandbox forwarder."""

from __future__ import annotations

from sandbox.egress.base import (
    AttemptCallback,
    EgressCaps,
    EgressFilter,
    IPAddress,
    ResolveError,
    Resolver,
    Verdict,
)
from sandbox.egress.proxy import EgressProxy
from sandbox.egress.resolver import SystemResolver
from sandbox.egress.rules import Allowlist, Rule, parse_rule, validate_entries
from sandbox.egress.script import (
    READY_PREFIX,
    forwarder_argv,
    forwarder_path,
    forwarder_source,
    proxy_env,
)

__all__ = [
    "READY_PREFIX",
    "Allowlist",
    "AttemptCallback",
    "EgressCaps",
    "EgressFilter",
    "EgressProxy",
    "IPAddress",
    "ResolveError",
    "Resolver",
    "Rule",
    "SystemResolver",
    "Verdict",
    "forwarder_argv",
    "forwarder_path",
    "forwarder_source",
    "parse_rule",
    "proxy_env",
    "validate_entries",
]
