"""How each part of the running service is built from the settings (`services.running` puts
them together): the sandbox backend and its images (and the classes its warm pool keeps), the
screener's options, the audit store, the policies (every load and rejected reload audited),
the dispatcher (Redis, or an in-process queue) with its webhook deliverer, and the session
manager with its audit and quota hooks.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import structlog
from pydantic import SecretStr

from guards.options import GuardOptions, NemoLLM
from guards.screener import Screener
from sandbox import BackendConfig, SandboxBackend, backend_class
from sandbox.egress.attach import egress_attacher
from sandbox.image import ImageStore
from sandbox.languages import language
from sandbox.pool import PoolObserver, PoolOptions, SlotClass
from sandbox.slots import SandboxSlots
from sandgate.audit.auditor import Auditor
from sandgate.audit.base import AuditError
from sandgate.audit.dsn import KEY_FILE, open_store, redacted_dsn
from sandgate.dispatch.base import Dispatcher
from sandgate.dispatch.local import LocalDispatcher
from sandgate.dispatch.streams import RedisDispatcher
from sandgate.dispatch.webhooks import Webhooks
from sandgate.keys import ApiKey
from sandgate.metrics import Metrics
from sandgate.policy.issues import PolicySetInvalid
from sandgate.policy.loader import PolicySet
from sandgate.policy.registry import PolicyRegistry, Rejection
from sandgate.quotas import Budgets
from sandgate.secretfile import persistent_secret
from sandgate.sessions.manager import SessionManager
from sandgate.sessions.registry import SessionRecord, SessionRegistry
from sandgate.settings import Settings

__all__ = [
    "guard_options",
    "image_store",
    "load_policies",
    "make_backend",
    "make_dispatcher",
    "node_name",
    "open_auditor",
    "pool_classes",
    "session_manager",
]

log = structlog.get_logger(__name__)


def image_store(settings: Settings) -> ImageStore:
    """The sandbox images of the settings' state directory."""
    return ImageStore(settings.images_dir, settings.state_dir, mirror=settings.debian_mirror)


def make_backend(
    settings: Settings, slots: SandboxSlots | None = None, observer: PoolObserver | None = None
) -> SandboxBackend:
    """The sandbox backend the settings name; its warm pool's refill stays within `slots`."""
    preimport = tuple(filter(None, settings.pool_preimport.split(",")))
    config = BackendConfig(
        state_dir=settings.state_dir,
        images=image_store(settings),
        slots=slots,
        pool=PoolOptions(size=settings.pool_size if slots else 0, preimport=preimport),
        observer=observer,
        attacher=egress_attacher(allow_private=settings.egress_allow_private),
        runsc_path=settings.runsc_path,
        runsc_platform=settings.runsc_platform,
        docker_url=settings.docker_url,
        docker_runtime=settings.docker_runtime,
        docker_uds_runtime=settings.docker_uds_runtime,
        docker_allow_runc=settings.docker_allow_runc,
        docker_cgroup_root=settings.docker_cgroup_root,
    )
    return backend_class(settings.backend).from_config(config)


def pool_classes(policies: PolicySet) -> set[SlotClass]:
    """The sandbox classes the policies' executions run in (each language on each image the
    policy allows it): the ones the pool keeps warm."""
    return {
        SlotClass.for_limits(
            name, policy.limits.sandbox_limits(), egress=bool(policy.network.egress), image=image
        )
        for policy in (resolved.policy for resolved in policies.policies.values())
        for name in policy.languages
        for image in policy.allowed_images()
        if image in language(name).images
    }


def guard_options(settings: Settings) -> GuardOptions:
    """The screener's host settings; the hash secret persists in the state directory."""
    secret = settings.hash_secret or SecretStr(
        persistent_secret(settings.state_dir / "hash_secret")
    )
    llm = None
    if settings.nemo_llm_url and settings.nemo_llm_model:
        llm = NemoLLM(
            base_url=settings.nemo_llm_url,
            model=settings.nemo_llm_model,
            api_key_env=settings.nemo_llm_key_env,
        )
    return GuardOptions(
        spacy_model_path=settings.spacy_model_path, hash_secret=secret, nemo_llm=llm
    )


def open_auditor(settings: Settings) -> Auditor:
    """The audit store the settings name (SQLite in the state directory by default)."""
    key = (
        settings.audit_hmac_key.get_secret_value()
        if settings.audit_hmac_key
        else persistent_secret(settings.state_dir / KEY_FILE)
    ).encode()
    if settings.audit_dsn == "off":
        log.warning("audit.off", effect="nothing is audited; this instance never reports ready")
        return Auditor(None, key)
    dsn = settings.audit_dsn or f"sqlite://{settings.state_dir / 'audit.db'}"
    try:
        return Auditor(open_store(dsn, hmac_key=key), key)
    except AuditError as exc:
        raise RuntimeError(f"cannot open the audit store {redacted_dsn(dsn)}: {exc}") from None


def node_name(settings: Settings) -> str:
    """This node's name: `SANDGATE_NODE_NAME`, or the host's."""
    return settings.node_name or socket.gethostname()


def make_dispatcher(
    settings: Settings, metrics: Metrics, auditor: Auditor, *, runs: bool
) -> Dispatcher:
    """Redis when the settings name it, else the in-process queue; with the webhook deliverer
    where jobs run (`runs`)."""
    webhooks = None
    if runs:
        secret = settings.webhook_secret or SecretStr(
            persistent_secret(settings.state_dir / "webhook_secret")
        )
        webhooks = Webhooks(
            secret.get_secret_value().encode(),
            attempts=settings.webhook_attempts,
            backoff_s=settings.webhook_backoff_s,
            allow_private=settings.webhook_allow_private,
            auditor=auditor,
        )
    node = node_name(settings)
    # Each server process takes its share of the host's sandbox slots from the queue.
    capacity = max(1, settings.max_concurrency // settings.workers)
    if settings.redis_url is None:
        return LocalDispatcher(
            node=node,
            capacity=capacity,
            max_depth=settings.queue_max_depth,
            ttl_s=settings.execution_ttl_s,
            webhooks=webhooks,
            metrics=metrics,
        )
    return RedisDispatcher(
        settings.redis_url,
        node=node,
        capacity=capacity,
        max_depth=settings.queue_max_depth,
        ttl_s=settings.execution_ttl_s,
        dead_after_s=settings.worker_dead_after_s,
        webhooks=webhooks,
        metrics=metrics,
        grace_s=settings.shutdown_grace_s,
    )


def _finding_producers(screener: Screener) -> dict[str, set[str]]:
    """Finding type -> the detectors that can report it."""
    producers: dict[str, set[str]] = {}
    for detector, types in screener.entities_by_detector().items():
        for kind in types:
            producers.setdefault(kind, set()).add(detector)
    return producers


def load_policies(
    settings: Settings,
    screener: Screener,
    metrics: Metrics,
    auditor: Auditor,
    on_loaded: Callable[[PolicySet], object],
) -> PolicyRegistry:
    """The policy registry; every load and rejected reload is counted and audited, and every
    set loaded is passed to `on_loaded`."""

    def on_change(loaded: PolicySet | None, rejected: Rejection | None) -> None:
        metrics.policy_reloads.labels("ok" if loaded else "rejected").inc()
        details: dict[str, object]
        if loaded is not None:
            on_loaded(loaded)
            action, verdict = "policy.load", "ok"
            details = {"policies": {n: p.hash for n, p in loaded.policies.items()}}
        else:
            action, verdict = "policy.rejected", "rejected"
            details = {"issues": [str(i) for i in (rejected.issues if rejected else [])][:20]}
        auditor.record_background(
            Auditor.event(
                action, key=None, request_id=None, client=None, verdict=verdict, details=details
            )
        )

    try:
        return PolicyRegistry(
            settings.policy_dir, producers=_finding_producers(screener), listener=on_change
        )
    except PolicySetInvalid as exc:
        for issue in exc.issues:
            log.error("policy.invalid", issue=str(issue))
        raise RuntimeError(
            f"the policies in {settings.policy_dir} are invalid; "
            f"run `sandgate policy check {settings.policy_dir}`"
        ) from None


def session_manager(
    settings: Settings,
    backend: SandboxBackend | None,
    registry: SessionRegistry,
    dispatch: Dispatcher,
    auditor: Auditor,
    budgets: Budgets,
) -> SessionManager:
    """The sessions of this process (held as the dispatcher's worker); an end that no request
    asked for (idle, ttl, a dead sandbox, a restart, a dead worker) is audited as `session.end`
    with its reason, and every end charges the hours the session was open to its key's and
    tenant's `session_hours_per_day`."""

    async def on_closed(record: SessionRecord) -> None:
        hours = ((record.ended_at or time.time()) - record.created_at) / 3600
        await budgets.charge_session_hours(record.key_id, record.tenant, hours)

    async def on_end(record: SessionRecord) -> None:
        owner = ApiKey(
            id=record.key_id,
            name=record.key_name,
            tenant=record.tenant,
            scopes=[],
            created_at=record.created_at,
        )
        event = Auditor.event(
            "session.end",
            key=owner,
            request_id=None,
            client=None,
            verdict="ok",
            status=record.end_reason,
            details={"session_id": record.id, "executions": record.executions},
        )
        await auditor.record(event)

    return SessionManager(
        backend,
        registry,
        node=node_name(settings),
        worker=dispatch.consumer,
        memory_budget_mb=settings.sessions_memory_mb,
        on_end=on_end,
        on_closed=on_closed,
        dead=dispatch.worker_dead,
    )
