"""The running service's parts, built from settings when the app starts and closed when it stops.

`running(settings, backend=..., screener=...)` builds everything a request needs: the key store,
the screener, the audit log, the policies (watched for changes), the sandbox backend (reaping
what a crash left when no sibling worker is alive) and the executor. A test may hand in its own
backend (a fake, for logic above the sandbox) or screener (one shared by many in-process apps).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

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
from sandgate import __version__
from sandgate.audit.auditor import Auditor
from sandgate.audit.base import AuditError
from sandgate.audit.dsn import KEY_FILE, open_store, redacted_dsn
from sandgate.breaker import CpuBreaker
from sandgate.executor import Executor
from sandgate.keys import ApiKey, KeyStore, SqliteKeyStore
from sandgate.keys.base import ENV_KEY_NAME
from sandgate.keys.expiry import expires_at, expiring
from sandgate.lease import WorkerLease
from sandgate.metrics import Metrics
from sandgate.observe import StepMetrics
from sandgate.policy.issues import PolicySetInvalid
from sandgate.policy.loader import PolicySet
from sandgate.policy.registry import PolicyRegistry, Rejection
from sandgate.quotas import Budgets
from sandgate.ratelimit import RateLimiter
from sandgate.secretfile import persistent_secret
from sandgate.sessions.manager import SessionManager
from sandgate.sessions.registry import SessionRecord, SessionRegistry
from sandgate.settings import PRIVATE_EGRESS_WARNING, Settings
from sandgate.tracing import Tracing
from sandgate.usage import SqliteUsageStore

__all__ = ["Services", "image_store", "make_backend", "running"]

log = structlog.get_logger(__name__)
LAST_USED_FLUSH_S = 5.0  # how often the keys' `last_used_at` is written, in one batch
EXPIRY_LOG_S = 3600.0  # how often keys close to expiry are logged


@dataclass
class Services:
    """The running service's parts, reachable from routes through `deps`."""

    settings: Settings
    keys: KeyStore
    backend: SandboxBackend
    executor: Executor
    policies: PolicyRegistry
    metrics: Metrics
    screener: Screener
    auditor: Auditor
    sessions: SessionManager
    limiter: RateLimiter
    budgets: Budgets
    tracing: Tracing
    images: ImageStore


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


async def _housekeeping(keys: KeyStore, registry: PolicyRegistry, stop: asyncio.Event) -> None:
    """Until `stop`: write the keys' noted uses every few seconds, and log the keys close to
    expiry at start and every hour."""
    warned_at = 0.0
    while not stop.is_set():
        await asyncio.to_thread(keys.flush_last_used)
        if time.monotonic() - warned_at >= EXPIRY_LOG_S or not warned_at:
            warned_at = time.monotonic()
            listed = await asyncio.to_thread(keys.list)
            for warning in expiring(listed, registry.current, time.time()):
                log.warning("key.expiring", detail=warning)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LAST_USED_FLUSH_S)


def session_manager(
    settings: Settings, backend: SandboxBackend, auditor: Auditor, budgets: Budgets
) -> SessionManager:
    """The sessions of this process; an end that no request asked for (idle, ttl, a dead
    sandbox, a restart) is audited as `session.end` with its reason, and every end charges the
    hours the session was open to its key's and tenant's `session_hours_per_day`."""

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
        SessionRegistry(settings.state_dir / "sessions.db"),
        memory_budget_mb=settings.sessions_memory_mb,
        on_end=on_end,
        on_closed=on_closed,
    )


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    backend: SandboxBackend | None = None,
    screener: Screener | None = None,
) -> AsyncIterator[Services]:
    """Build the service's parts, yield them, and close them whatever happens."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    keys = SqliteKeyStore(settings.state_dir / "keys.db")
    if screener is None:
        screener = Screener(guard_options(settings))
        await asyncio.to_thread(screener.warm_up)
    metrics = Metrics()
    auditor = open_auditor(settings)
    slots = SandboxSlots(
        settings.state_dir / "slots", settings.max_concurrency, settings.queue_timeout_s
    )
    backend = backend or make_backend(settings, slots, metrics)
    lease = WorkerLease(settings.state_dir)
    if lease.alone():
        backend.reap()
    await asyncio.to_thread(lease.share)
    # Reloads run on a thread, the pool on the loop; a reload drains the classes no policy
    # uses any more.
    loop = asyncio.get_running_loop()
    registry = load_policies(
        settings,
        screener,
        metrics,
        auditor,
        lambda p: loop.call_soon_threadsafe(backend.warm, pool_classes(p)),
    )
    if settings.api_key is not None:
        expiry = expires_at(registry.current, ENV_KEY_NAME, "default", time.time())
        keys.seed(settings.api_key.get_secret_value(), expiry)
    await backend.start()
    limiter = RateLimiter(settings.redis_url)
    tracing = Tracing(settings.otlp_endpoint, steps=StepMetrics(metrics))
    usage = SqliteUsageStore(settings.state_dir / "usage.db")
    breaker = CpuBreaker(
        usage,
        settings.cpu_budget_per_hour,
        settings.cpu_breaker_cooldown_s,
        on_change=metrics.cpu_budget_changed,
    )
    budgets = Budgets(usage, breaker, on_refused=lambda r: metrics.refused.labels(r).inc())
    budgets.prune()
    sessions = session_manager(settings, backend, auditor, budgets)
    await sessions.start()
    stop_watching = asyncio.Event()
    watcher = asyncio.create_task(registry.watch(stop_watching))
    housekeeper = asyncio.create_task(_housekeeping(keys, registry, stop_watching))
    if settings.egress_allow_private:
        log.warning("egress.private_allowed", effect=PRIVATE_EGRESS_WARNING)
    log.info(
        "service.started",
        backend=backend.name,
        max_concurrency=settings.max_concurrency,
        pool=backend.pool_state(),
        state_dir=str(settings.state_dir),
        version=__version__,
    )
    try:
        yield Services(
            settings=settings,
            keys=keys,
            backend=backend,
            executor=Executor(backend, slots, metrics),
            policies=registry,
            metrics=metrics,
            screener=screener,
            auditor=auditor,
            sessions=sessions,
            limiter=limiter,
            budgets=budgets,
            tracing=tracing,
            images=image_store(settings),
        )
    finally:
        stop_watching.set()
        await watcher
        await housekeeper
        await sessions.stop()
        sessions.registry.close()
        keys.close()
        await limiter.close()
        usage.close()
        tracing.close()
        await backend.aclose()
        lease.release()
        metrics.close()
        if auditor.enabled:
            auditor.store.close()
        log.info("service.stopped")
