"""The running service's parts, built from settings when the app starts and closed when it stops.

`running(settings, backend=..., screener=...)` builds everything a request needs: the key store,
the screener, the audit log, the policies (watched for changes), the dispatcher (Redis, or an
in-process queue), and on a node that runs sandboxes (role `all` or `worker`) the sandbox
backend (reaping what a crash left when no sibling worker is alive), the executor and the
webhook deliverer. An API node (role `api`) has no backend: its jobs go to the workers. A test
may hand in its own backend (a fake, for logic above the sandbox) or screener (one shared by
many in-process apps).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog
from pydantic import SecretStr

from guards.options import GuardOptions, NemoLLM
from guards.screener import Screener
from sandbox import BackendConfig, SandboxBackend, backend_class
from sandbox.egress.attach import egress_attacher
from sandbox.image import ImageStore
from sandgate import __version__
from sandgate.audit.auditor import Auditor
from sandgate.audit.base import AuditError
from sandgate.audit.dsn import KEY_FILE, open_store, redacted_dsn
from sandgate.dispatch.base import Dispatcher
from sandgate.dispatch.local import LocalDispatcher
from sandgate.dispatch.streams import RedisDispatcher
from sandgate.dispatch.webhooks import Webhooks
from sandgate.executor import Executor
from sandgate.keys import KeyStore
from sandgate.lease import WorkerLease
from sandgate.metrics import Metrics
from sandgate.policy.issues import PolicySetInvalid
from sandgate.policy.loader import PolicySet
from sandgate.policy.registry import PolicyRegistry, Rejection
from sandgate.secretfile import persistent_secret
from sandgate.settings import PRIVATE_EGRESS_WARNING, Settings
from sandgate.slots import SandboxSlots

__all__ = ["Services", "make_backend", "running"]

log = structlog.get_logger(__name__)


@dataclass
class Services:
    """The running service's parts, reachable from routes through `deps`."""

    settings: Settings
    keys: KeyStore
    backend: SandboxBackend | None  # None on an API node
    executor: Executor | None
    dispatch: Dispatcher
    policies: PolicyRegistry
    metrics: Metrics
    screener: Screener
    auditor: Auditor


def make_backend(settings: Settings) -> SandboxBackend:
    """The sandbox backend the settings name."""
    config = BackendConfig(
        state_dir=settings.state_dir,
        images=ImageStore(settings.images_dir, settings.state_dir, mirror=settings.debian_mirror),
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
    node = settings.node_name or socket.gethostname()
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
    settings: Settings, screener: Screener, metrics: Metrics, auditor: Auditor
) -> PolicyRegistry:
    """The policy registry; every load and rejected reload is counted and audited."""

    def on_change(loaded: PolicySet | None, rejected: Rejection | None) -> None:
        metrics.policy_reloads.labels("ok" if loaded else "rejected").inc()
        details: dict[str, object]
        if loaded is not None:
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


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    backend: SandboxBackend | None = None,
    screener: Screener | None = None,
) -> AsyncIterator[Services]:
    """Build the service's parts, yield them, and close them whatever happens."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(settings.state_dir / "keys.db")
    if settings.api_key is not None:
        keys.seed(settings.api_key.get_secret_value())
    if screener is None:
        screener = Screener(guard_options(settings))
        await asyncio.to_thread(screener.warm_up)
    metrics = Metrics()
    auditor = open_auditor(settings)
    registry = load_policies(settings, screener, metrics, auditor)
    runs = settings.role != "api"
    executor, lease = None, None
    if runs:
        backend = backend or make_backend(settings)
        lease = WorkerLease(settings.state_dir)
        if lease.alone():
            backend.reap()
        await asyncio.to_thread(lease.share)
        slots = SandboxSlots(
            settings.state_dir / "slots", settings.max_concurrency, settings.queue_timeout_s
        )
        executor = Executor(backend, slots, metrics)
    else:
        backend = None
    dispatch = make_dispatcher(settings, metrics, auditor, runs=runs)
    stop_watching = asyncio.Event()
    watcher = asyncio.create_task(registry.watch(stop_watching))
    if settings.egress_allow_private:
        log.warning("egress.private_allowed", effect=PRIVATE_EGRESS_WARNING)
    log.info(
        "service.started",
        role=settings.role,
        backend=backend.name if backend else None,
        queue=dispatch.name,
        max_concurrency=settings.max_concurrency,
        state_dir=str(settings.state_dir),
        version=__version__,
    )
    try:
        yield Services(
            settings=settings,
            keys=keys,
            backend=backend,
            executor=executor,
            dispatch=dispatch,
            policies=registry,
            metrics=metrics,
            screener=screener,
            auditor=auditor,
        )
    finally:
        stop_watching.set()
        await watcher
        keys.close()
        if backend is not None:
            backend.close()
        if lease is not None:
            lease.release()
        metrics.close()
        if auditor.enabled:
            auditor.store.close()
        log.info("service.stopped")
