"""The running service's parts, put together when the app starts and closed when it stops.

`running(settings, backend=..., screener=...)` builds everything a request needs (each part is
made in `sandgate.parts`, the stores in `sandgate.stores`): the key store, the screener, the
audit log, the policies (watched for changes), the rate limiter, quotas and CPU breaker, the
dispatcher (Redis, or an in-process queue), the sessions, and on a node that runs sandboxes
(role `all` or `worker`) the sandbox backend (reaping what a crash left when no sibling worker
is alive), the executor and the webhook deliverer. An API node (role `api`) has no backend:
its jobs go to the workers. A test may hand in its own backend (a fake, for logic above the
sandbox) or screener (one shared by many in-process apps).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog

from guards.screener import Screener
from sandbox import SandboxBackend
from sandbox.image import ImageStore
from sandbox.slots import SandboxSlots
from sandgate import __version__
from sandgate.audit.auditor import Auditor
from sandgate.breaker import CpuBreaker
from sandgate.dispatch.base import Dispatcher
from sandgate.dispatch.calls import SessionCalls
from sandgate.dispatch.streams import RedisDispatcher
from sandgate.executor import Executor
from sandgate.keys import KeyStore
from sandgate.keys.base import ENV_KEY_NAME
from sandgate.keys.expiry import expires_at, expiring
from sandgate.lease import WorkerLease
from sandgate.metrics import Metrics
from sandgate.observe import StepMetrics
from sandgate.parts import (
    guard_options,
    image_store,
    load_policies,
    make_backend,
    make_dispatcher,
    open_auditor,
    pool_classes,
    session_manager,
)
from sandgate.policy.loader import PolicySet
from sandgate.policy.registry import PolicyRegistry
from sandgate.quotas import Budgets
from sandgate.ratelimit import RateLimiter
from sandgate.sessions.manager import SessionManager
from sandgate.settings import PRIVATE_EGRESS_WARNING, Settings
from sandgate.stores import open_keys, open_registry, open_usage
from sandgate.tracing import Tracing

__all__ = ["Services", "running"]

log = structlog.get_logger(__name__)
LAST_USED_FLUSH_S = 5.0  # how often the keys' `last_used_at` is written, in one batch
EXPIRY_LOG_S = 3600.0  # how often keys close to expiry are logged


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
    sessions: SessionManager
    limiter: RateLimiter
    budgets: Budgets
    tracing: Tracing
    images: ImageStore
    calls: SessionCalls | None  # with Redis: calls to sessions another worker holds

    @property
    def sandboxes(self) -> Executor:
        """The executor, on a node that runs sandboxes (roles `all` and `worker`)."""
        if self.executor is None:
            raise RuntimeError("an API node runs no sandbox: its jobs go to the workers")
        return self.executor


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


@asynccontextmanager
async def running(
    settings: Settings,
    *,
    backend: SandboxBackend | None = None,
    screener: Screener | None = None,
) -> AsyncIterator[Services]:
    """Build the service's parts, yield them, and close them whatever happens."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    keys = open_keys(settings)
    if screener is None:
        screener = Screener(guard_options(settings))
        await asyncio.to_thread(screener.warm_up)
    metrics = Metrics()
    auditor = open_auditor(settings)
    runs = settings.role != "api"
    executor, lease = None, None
    if runs:
        slots = SandboxSlots(
            settings.state_dir / "slots", settings.max_concurrency, settings.queue_timeout_s
        )
        backend = backend or make_backend(settings, slots, metrics)
        lease = WorkerLease(settings.state_dir)
        if lease.alone():
            backend.reap()
        await asyncio.to_thread(lease.share)
        executor = Executor(backend, slots, metrics)
    else:
        backend = None
    # Reloads run on a thread, the pool on the loop; a reload drains the classes no policy
    # uses any more.
    loop = asyncio.get_running_loop()

    def warm(policies: PolicySet) -> None:
        if backend is not None:
            loop.call_soon_threadsafe(backend.warm, pool_classes(policies))

    registry = load_policies(settings, screener, metrics, auditor, warm)
    if settings.api_key is not None:
        expiry = expires_at(registry.current, ENV_KEY_NAME, "default", time.time())
        keys.seed(settings.api_key.get_secret_value(), expiry)
    if backend is not None:
        await backend.start()
    dispatch = make_dispatcher(settings, metrics, auditor, runs=runs)
    limiter = RateLimiter(settings.redis_url)
    tracing = Tracing(settings.otlp_endpoint, steps=StepMetrics(metrics))
    usage = open_usage(settings)
    breaker = CpuBreaker(
        usage,
        settings.cpu_budget_per_hour,
        settings.cpu_breaker_cooldown_s,
        on_change=metrics.cpu_budget_changed,
    )
    budgets = Budgets(usage, breaker, on_refused=lambda r: metrics.refused.labels(r).inc())
    budgets.prune()
    sessions = session_manager(
        settings, backend, open_registry(settings), dispatch, auditor, budgets
    )
    await sessions.start()
    stop_watching = asyncio.Event()
    watcher = asyncio.create_task(registry.watch(stop_watching))
    housekeeper = asyncio.create_task(_housekeeping(keys, registry, stop_watching))
    if settings.egress_allow_private:
        log.warning("egress.private_allowed", effect=PRIVATE_EGRESS_WARNING)
    log.info(
        "service.started",
        role=settings.role,
        backend=backend.name if backend else None,
        queue=dispatch.name,
        max_concurrency=settings.max_concurrency,
        pool=backend.pool_state() if backend else None,
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
            sessions=sessions,
            limiter=limiter,
            budgets=budgets,
            tracing=tracing,
            images=image_store(settings),
            calls=dispatch.calls if isinstance(dispatch, RedisDispatcher) else None,
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
        if backend is not None:
            await backend.aclose()
        if lease is not None:
            lease.release()
        metrics.close()
        if auditor.enabled:
            auditor.store.close()
        log.info("service.stopped")
