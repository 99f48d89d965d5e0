"""Service settings, read from `SANDGATE_*` environment variables (names fixed by DESIGN.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import psutil
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_PREIMPORT", "PRIVATE_EGRESS_WARNING", "REPO_ROOT", "Settings"]

REPO_ROOT = Path(__file__).resolve().parent.parent
# Common and cheap: a sandbox started with these costs about the CPU of one without (~150 ms
# here); 24 modules (typing, decimal, pathlib...) cost 260 ms, paid by every execution.
DEFAULT_PREIMPORT = "json,re,datetime,math,random,collections,itertools,functools,base64,hashlib"
PRIVATE_EGRESS_WARNING = (
    "SANDGATE_EGRESS_ALLOW_PRIVATE is on: policies naming an exact loopback or private "
    "address can reach it; for tests and labs only"
)


class Settings(BaseSettings):
    """Everything an operator sets; built once in the app factory, never at import."""

    model_config = SettingsConfigDict(env_prefix="SANDGATE_", extra="ignore", frozen=True)

    host: str = Field("127.0.0.1", description="Address the HTTP server binds.")
    port: int = Field(8000, ge=1, le=65535, description="Port the HTTP server binds.")
    workers: int = Field(
        1, ge=1, le=64, description="uvicorn worker processes; /metrics sums them all."
    )
    api_key: SecretStr | None = Field(
        None, description="Seeds one admin key (named `env`) for local use; never logged."
    )
    state_dir: Path = Field(
        Path(".state"), description="Images, databases and per-execution runtime files."
    )
    policy_dir: Path = Field(REPO_ROOT / "policies", description="Where the YAML policies live.")
    images_dir: Path = Field(REPO_ROOT / "images", description="Sandbox image recipes.")
    backend: Literal["runsc", "docker"] = Field("runsc", description="Sandbox backend.")
    max_concurrency: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        le=1024,
        description="Sandboxes running at once on this host, across all workers.",
    )
    pool_size: int = Field(
        2,
        ge=0,
        le=64,
        description="Sandboxes kept started ahead per class (image, language, process and disk "
        "limits, egress) and per worker; 0 turns the warm pool off: every run starts cold.",
    )
    pool_preimport: str = Field(
        DEFAULT_PREIMPORT,
        pattern=r"^([A-Za-z_][A-Za-z0-9_.]*(,[A-Za-z_][A-Za-z0-9_.]*)*)?$",
        description="Standard-library modules (comma-separated) a pooled Python sandbox "
        "imports before it waits for code; empty for none.",
    )
    sessions_memory_mb: int = Field(
        default_factory=lambda: max(256, psutil.virtual_memory().total // (4 << 20)),
        ge=0,
        le=1 << 24,
        description="Memory all sessions of this host may hold together, MiB (their caps "
        "summed); default a quarter of the host's RAM. Past it, POST /sessions is 429 busy.",
    )
    queue_timeout_s: float = Field(
        10.0, ge=0, le=300, description="How long a request waits for a free sandbox before 429."
    )
    max_request_bytes: int = Field(
        2 << 20, ge=1024, le=64 << 20, description="Largest request body accepted (else 413)."
    )
    egress_allow_private: bool = Field(
        False,
        description="For tests and labs only: lets a policy that names an exact loopback or "
        "private address:port reach it through the egress proxy. Shown as a warning in /ready.",
    )
    runsc_path: str = Field("runsc", description="The runsc binary.")
    runsc_platform: str = Field("ptrace", description="gVisor platform; KVM hung on these hosts.")
    debian_mirror: str = Field("http://deb.debian.org/debian", description="For image builds.")
    docker_url: str | None = Field(
        None, description="Docker daemon for the docker backend (default: DOCKER_HOST or local)."
    )
    docker_runtime: str = Field("runsc", description="Docker runtime of the sandboxes (gVisor).")
    docker_uds_runtime: str | None = Field(
        None,
        description="Runtime of sandboxes with egress (runsc with --host-uds=open, so they reach "
        "the proxy's socket); default `<docker_runtime>-uds`.",
    )
    docker_allow_runc: bool = Field(
        False, description="Allow runtime runc: no gVisor, NOT a boundary for untrusted code."
    )
    docker_cgroup_root: Path = Field(
        Path("/sys/fs/cgroup"), description="The host's cgroup v1 root, as this process sees it."
    )
    spacy_model_path: Path | None = Field(
        None,
        description="An official spaCy pipeline directory; enables PERSON, LOCATION, "
        "ORGANIZATION and NRP detection. Without it PII detection is pattern-based.",
    )
    hash_secret: SecretStr | None = Field(
        None,
        min_length=16,
        description="Keys the `hash` redaction operator. Unset: a random secret kept in the "
        "state directory (set it explicitly when several hosts must agree).",
    )
    nemo_llm_url: str | None = Field(
        None, description="OpenAI-compatible endpoint for NeMo's LLM self-check rails."
    )
    nemo_llm_model: str | None = Field(None, description="Model name at that endpoint.")
    nemo_llm_key_env: str | None = Field(
        None, description="Environment variable holding that endpoint's key."
    )
    audit_dsn: str | None = Field(
        None,
        description="The audit store: `postgresql://...` for several hosts; default SQLite "
        "(WAL) at <state_dir>/audit.db. `off` disables auditing: benchmarks only, never ready.",
    )
    audit_hmac_key: SecretStr | None = Field(
        None,
        min_length=16,
        description="Signs audit checkpoints. Unset: a key kept in <state_dir>/audit_hmac_key.",
    )
    state_dsn: str | None = Field(
        None,
        description="`postgresql://...`: keys, usage and quotas, and the sessions' registry, "
        "shared by every node. Unset: SANDGATE_AUDIT_DSN when that is PostgreSQL, else SQLite "
        "files in the state directory.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis (`redis://host:6379/0`), shared by every worker and host: the work "
        "queue, results, heartbeats, session routing and rate-limit buckets. Unset: an "
        "in-process queue and buckets in each worker process's memory (role `all` only).",
    )
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP collector (`http://host:4318`): traces go to <endpoint>/v1/traces. "
        "Unset: no trace leaves the process (log lines still carry trace and span ids).",
    )
    cpu_budget_per_hour: float | None = Field(
        None,
        gt=0,
        description="Host-wide circuit breaker: CPU-seconds of executions per trailing hour past "
        "which new executions are refused (503) until it recovers. Unset: no breaker.",
    )
    cpu_breaker_cooldown_s: float = Field(
        60.0, gt=0, le=86_400, description="How long the tripped breaker waits before a probe."
    )
    shutdown_grace_s: float = Field(
        30.0, ge=0, le=3600, description="On SIGTERM, how long running requests may finish."
    )
    role: Literal["all", "api", "worker"] = Field(
        "all",
        description="`all`: one process does everything; `api`: admission, screening of the "
        "code, dispatch and relay, no sandbox; `worker`: runs what the queue hands it.",
    )
    node_name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="This node's name in heartbeats and metrics; default host name and pid.",
    )
    queue_max_depth: int = Field(
        1000, ge=1, le=1_000_000, description="Executions waiting to start before 429."
    )
    execution_ttl_s: int = Field(
        86_400, ge=60, le=30 * 86_400, description="How long an execution's state is kept."
    )
    worker_dead_after_s: float = Field(
        10.0,
        ge=1,
        le=600,
        description="A worker whose heartbeat is older than this is dead: what it had not "
        "started goes to another worker, what it had started ends as `worker lost`.",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        min_length=16,
        description="Signs webhook bodies (X-Sandgate-Signature). Unset: a secret kept in "
        "<state_dir>/webhook_secret (set it when several workers deliver).",
    )
    webhook_attempts: int = Field(5, ge=1, le=20, description="Deliveries tried per webhook.")
    webhook_backoff_s: float = Field(
        1.0, gt=0, le=600, description="First retry delay; doubled each attempt (capped 5 min)."
    )
    webhook_allow_private: bool = Field(
        False,
        description="For tests and labs only: webhooks may go to loopback and private addresses "
        "(never to cloud metadata).",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    public_docs: bool = Field(True, description="Serve /docs and /openapi.json without a key.")

    @model_validator(mode="after")
    def _queue_for_roles(self) -> Settings:
        if self.role != "all" and not self.redis_url:
            raise ValueError(f"role {self.role!r} needs SANDGATE_REDIS_URL (the shared queue)")
        return self

    @field_validator("state_dir", "policy_dir", "images_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()
