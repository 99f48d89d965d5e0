"""The policy schema: what a YAML file under `policies/` may say, as pydantic models.

Every section forbids unknown keys, so a misspelt `egres:` is an error rather than a silently
open network. `policies/schema.json` is generated from these models (`sandgate policy schema`)
for editors with a YAML language server.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from guards.config import ScreeningConfig
from sandbox.base import EgressSpec, Limits, MiB
from sandbox.egress.rules import parse_rule
from sandbox.languages import IMAGES, LANGUAGES, UnknownImage, language
from sandgate.policy.budgets import KeyLifetime, Quotas, RateLimits

__all__ = ["NAME_PATTERN", "AuditPolicy", "Network", "Policy", "PolicyLimits", "SessionPolicy"]

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class PolicyLimits(Limits):
    """Resource limits of each execution, plus caps on what a request may bring in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_files: int = Field(64, ge=0, le=1024, description="Files a request may write into /work.")
    max_files_bytes: int = Field(
        4 * MiB, ge=0, le=256 * MiB, description="Total size of those files, bytes."
    )
    max_code_bytes: int = Field(
        256 * 1024, gt=0, le=16 * MiB, description="Largest `code` accepted, bytes (else 413)."
    )
    max_results: int = Field(
        32, ge=0, le=1024, description="Rich results (values, displays, figures) returned."
    )
    max_result_bytes: int = Field(
        2 * MiB, gt=0, le=64 * MiB, description="Largest rich result returned, bytes of JSON."
    )
    max_output_files: int = Field(
        32, ge=0, le=1024, description="Files of /work returned for `outputs` patterns."
    )
    max_output_files_bytes: int = Field(
        16 * MiB, ge=0, le=256 * MiB, description="Their total size, bytes."
    )

    def sandbox_limits(self) -> Limits:
        """The subset the sandbox backend enforces."""
        return Limits.model_validate(self.model_dump(include=set(Limits.model_fields)))


def _entries(entries: list[str]) -> list[str]:
    for entry in entries:
        parse_rule(entry)  # raises ValueError saying what is wrong with the entry
    if len(set(entries)) != len(entries):
        raise ValueError("an entry is listed twice")
    return entries


class Network(BaseModel):
    """Egress from the sandbox. Missing or empty `egress`: no network at all (the default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    egress: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="Allowlist of `host:port` entries: `api.example.com:443`, "
        "`*.example.com:443` (subdomains only, not the bare apex), `203.0.113.7:80`, "
        "`[2001:db8::1]:443`. `*`, `*.com`, schemes, paths and credentials are refused.",
    )
    deny: list[str] = Field(
        default_factory=list,
        max_length=256,
        description="Entries refused even when `egress` allows them; same syntax.",
    )
    max_connections: int = Field(
        64, gt=0, le=10_000, description="Connections one execution may open."
    )
    max_bytes: int = Field(
        64 * MiB, gt=0, le=16 * 1024 * MiB, description="Bytes up plus down per execution."
    )

    _check_egress = field_validator("egress", "deny")(_entries)

    def egress_spec(self) -> EgressSpec | None:
        """What the sandbox may reach through its proxy; None (no network) when nothing."""
        if not self.egress:
            return None
        return EgressSpec(
            allow=tuple(self.egress),
            deny=tuple(self.deny),
            max_connections=self.max_connections,
            max_bytes=self.max_bytes,
        )


class AuditPolicy(BaseModel):
    """What the audit log keeps of each decision, and for how long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    content: Literal["none", "redacted", "full"] = Field(
        "redacted",
        description="`none`: metadata only; `redacted`: excerpts after screening's redaction; "
        "`full`: the text as sent (secrets that screening blocks are still never kept).",
    )
    retention_days: int = Field(
        365, ge=1, le=36_500, description="Records older than this are pruned."
    )


class SessionPolicy(BaseModel):
    """Stateful sessions: one long-lived sandbox each. Executions in a session get the time and
    output caps of `limits`; its memory, processes and disk are capped for its whole life."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_per_key: int = Field(
        4, ge=0, le=256, description="Sessions one key may hold at once (0: no sessions)."
    )
    memory_mb: int = Field(
        512, gt=0, le=65536, description="Memory cap of a session's sandbox, MiB, for its life."
    )
    idle_timeout_s: float = Field(
        600, gt=0, le=86_400, description="Longest idle time a session may ask for (the default)."
    )
    ttl_s: float = Field(
        3600,
        gt=0,
        le=7 * 86_400,
        description="Longest lifetime a session may ask for (the default).",
    )
    max_file_bytes: int = Field(
        16 * MiB, gt=0, le=1024 * MiB, description="Largest file one upload may write, bytes."
    )
    max_files_bytes: int = Field(
        64 * MiB, gt=0, le=4096 * MiB, description="All uploads of a session together, bytes."
    )


class Policy(BaseModel):
    """One policy file. `extends` names a parent whose settings this one overrides."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        title="Sandgate policy",
        json_schema_extra={"$id": "https://sandgate.dev/schema/policy.json"},
    )

    extends: str | None = Field(
        None, pattern=NAME_PATTERN, description="Parent policy, by name (its file's stem)."
    )
    description: str = Field("", max_length=2000, description="What this policy is for.")
    owner: str | None = Field(None, max_length=200, description="Who answers for it.")
    labels: dict[str, str] = Field(
        default_factory=dict, max_length=64, description="Free labels (team, environment)."
    )
    limits: PolicyLimits = Field(default_factory=PolicyLimits)
    languages: list[str] = Field(
        default_factory=lambda: ["python"],
        min_length=1,
        description=f"Languages allowed; known: {', '.join(sorted(LANGUAGES))}.",
    )
    images: list[str] | None = Field(
        None,
        min_length=1,
        description="Sandbox images allowed; known: "
        + "; ".join(f"{i.name} ({i.description})" for i in IMAGES.values())
        + ". Missing: the default image of each allowed language ("
        + ", ".join(f"{lang.name}: {lang.image}" for lang in LANGUAGES.values())
        + "); an image beyond those (python-data) must be listed.",
    )
    network: Network = Field(default_factory=Network)
    sessions: SessionPolicy = Field(default_factory=SessionPolicy)
    screening: ScreeningConfig = Field(default_factory=ScreeningConfig)
    audit: AuditPolicy = Field(default_factory=AuditPolicy)
    rate_limits: RateLimits = Field(default_factory=RateLimits, description="Per key.")
    tenant_rate_limits: RateLimits = Field(
        default_factory=RateLimits, description="Per tenant: all of its keys together."
    )
    quotas: Quotas = Field(default_factory=Quotas, description="Per key, per UTC day.")
    tenant_quotas: Quotas = Field(
        default_factory=Quotas, description="Per tenant, per UTC day: all of its keys together."
    )
    keys: KeyLifetime = Field(default_factory=KeyLifetime)

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"unknown language(s) {unknown}; known: {sorted(LANGUAGES)}")
        return names

    @field_validator("images")
    @classmethod
    def _images_fit_languages(
        cls, names: list[str] | None, info: ValidationInfo
    ) -> list[str] | None:
        unknown = sorted(set(names or ()) - set(IMAGES))
        if unknown:
            raise ValueError(f"unknown image(s) {unknown}; known: {sorted(IMAGES)}")
        languages = info.data.get("languages")
        if names is None or languages is None:  # the default fits; bad languages say so there
            return names
        for name in names:
            if not any(name in language(lang).images for lang in languages):
                raise ValueError(f"image {name!r} runs none of the allowed languages {languages}")
        for lang in languages:
            if not set(language(lang).images) & set(names):
                runs = list(language(lang).images)
                raise ValueError(f"language {lang!r} has none of its images {runs} allowed")
        return names

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        bad = [k for k in labels if not re.match(r"^[A-Za-z0-9_.-]{1,63}$", k)]
        if bad:
            raise ValueError(f"label keys are 1-63 letters, digits, '_', '.', '-'; got {bad}")
        return labels

    def allowed_images(self) -> list[str]:
        """`images`, or when it is missing the default image of each allowed language."""
        if self.images is not None:
            return list(self.images)
        return list(dict.fromkeys(language(name).image for name in self.languages))

    def refusal(self, language_name: str, image_name: str | None = None) -> str | None:
        """Why this policy does not run `language_name` code on `image_name` (default: the
        language's own image), or None when it does."""
        if language_name not in self.languages:
            return f"language {language_name!r} is not allowed (allowed: {self.languages})"
        try:
            chosen = language(language_name).image_for(image_name)
        except UnknownImage as exc:
            return str(exc)
        if chosen not in self.allowed_images():
            return f"image {chosen!r} is not allowed (allowed: {self.allowed_images()})"
        if self.network.egress and not IMAGES[chosen].egress:
            return (
                f"image {chosen!r} has no egress forwarder (no python3) and this policy's "
                "network allows egress: name a policy without egress"
            )
        return None
