"""The app factory: builds the service's parts from settings and wires the routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from pydantic import SecretStr

from guards.options import GuardOptions, NemoLLM
from guards.screener import Screener
from sandbox import BackendConfig, SandboxBackend, backend_class
from sandbox.egress.attach import egress_attacher
from sandbox.image import ImageStore
from sandbox.pool import PoolObserver, PoolOptions, SlotClass
from sandbox.slots import SandboxSlots
from sandgate import __version__
from sandgate.api import audit, execute, health, policies, screen
from sandgate.api import metrics as metrics_api
from sandgate.audit.base import AuditError
from sandgate.audit.dsn import KEY_FILE, open_store, redacted_dsn
from sandgate.auditing import Auditor, audit_refusal
from sandgate.bodylimit import BodyLimitMiddleware
from sandgate.errors import install_handlers
from sandgate.executor import Executor
from sandgate.keys import KeyStore
from sandgate.lease import WorkerLease
from sandgate.logs import RequestIdMiddleware, configure_logging
from sandgate.metrics import Metrics
from sandgate.policy.issues import PolicySetInvalid
from sandgate.policy.loader import PolicySet
from sandgate.policy.registry import PolicyRegistry, Rejection
from sandgate.secretfile import persistent_secret
from sandgate.services import Services
from sandgate.settings import PRIVATE_EGRESS_WARNING, Settings

__all__ = ["create_app", "make_backend"]

log = structlog.get_logger(__name__)


def make_backend(
    settings: Settings, slots: SandboxSlots | None = None, observer: PoolObserver | None = None
) -> SandboxBackend:
    """The sandbox backend the settings name; its warm pool's refill stays within `slots`."""
    preimport = tuple(filter(None, settings.pool_preimport.split(",")))
    config = BackendConfig(
        state_dir=settings.state_dir,
        images=ImageStore(settings.images_dir, settings.state_dir, mirror=settings.debian_mirror),
        attacher=egress_attacher(allow_private=settings.egress_allow_private),
        slots=slots,
        pool=PoolOptions(size=settings.pool_size if slots else 0, preimport=preimport),
        observer=observer,
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
    """The sandbox classes the policies' executions run in: the ones the pool keeps warm."""
    return {
        SlotClass.for_limits(
            language,
            resolved.policy.limits.sandbox_limits(),
            egress=bool(resolved.policy.network.egress),
        )
        for resolved in policies.policies.values()
        for language in resolved.policy.languages
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


def finding_producers(screener: Screener) -> dict[str, set[str]]:
    """Finding type -> the detectors that can report it."""
    producers: dict[str, set[str]] = {}
    for detector, types in screener.entities_by_detector().items():
        for kind in types:
            producers.setdefault(kind, set()).add(detector)
    return producers


def open_auditor(settings: Settings) -> tuple[Auditor, bytes]:
    """The audit store the settings name (SQLite in the state directory by default)."""
    key = (
        settings.audit_hmac_key.get_secret_value()
        if settings.audit_hmac_key
        else persistent_secret(settings.state_dir / KEY_FILE)
    ).encode()
    if settings.audit_dsn == "off":
        log.warning("audit.off", effect="nothing is audited; this instance never reports ready")
        return Auditor(None), key
    dsn = settings.audit_dsn or f"sqlite://{settings.state_dir / 'audit.db'}"
    try:
        return Auditor(open_store(dsn, hmac_key=key)), key
    except AuditError as exc:
        raise RuntimeError(f"cannot open the audit store {redacted_dsn(dsn)}: {exc}") from None


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
        if loaded is not None:
            on_loaded(loaded)
            details = {"policies": {n: p.hash for n, p in loaded.policies.items()}}
            event = Auditor.event(
                "policy.load", key=None, request_id=None, client=None, verdict="ok", details=details
            )
        else:
            issues = [str(i) for i in (rejected.issues if rejected else [])][:20]
            event = Auditor.event(
                "policy.rejected",
                key=None,
                request_id=None,
                client=None,
                verdict="rejected",
                details={"issues": issues},
            )
        auditor.record_background(event)

    try:
        return PolicyRegistry(
            settings.policy_dir, producers=finding_producers(screener), listener=on_change
        )
    except PolicySetInvalid as exc:
        for issue in exc.issues:
            log.error("policy.invalid", issue=str(issue))
        raise RuntimeError(
            f"the policies in {settings.policy_dir} are invalid; "
            f"run `sandgate policy check {settings.policy_dir}`"
        ) from None


def create_app(settings: Settings | None = None) -> FastAPI:
    """A ready-to-serve app; parts start in the lifespan, not at import."""
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        keys = KeyStore(settings.state_dir / "keys.db")
        if settings.api_key is not None:
            keys.seed(settings.api_key.get_secret_value())
        screener = Screener(guard_options(settings))
        await asyncio.to_thread(screener.warm_up)
        metrics = Metrics()
        auditor, hmac_key = open_auditor(settings)
        slots = SandboxSlots(
            settings.state_dir / "slots", settings.max_concurrency, settings.queue_timeout_s
        )
        backend = make_backend(settings, slots, metrics)
        lease = WorkerLease(settings.state_dir)
        if lease.alone():
            backend.reap()
        await asyncio.to_thread(lease.share)
        # Reloads run on a thread; the pool lives on the loop. A reload drains the classes
        # no policy uses any more.
        loop = asyncio.get_running_loop()
        registry = load_policies(
            settings,
            screener,
            metrics,
            auditor,
            lambda p: loop.call_soon_threadsafe(backend.warm, pool_classes(p)),
        )
        await backend.start()
        app.state.services = Services(
            settings=settings,
            keys=keys,
            backend=backend,
            executor=Executor(backend, slots, screener, metrics),
            policies=registry,
            metrics=metrics,
            screener=screener,
            auditor=auditor,
            audit_hmac_key=hmac_key,
        )
        stop_watching = asyncio.Event()
        watcher = asyncio.create_task(registry.watch(stop_watching))
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
            yield
        finally:
            stop_watching.set()
            await watcher
            keys.close()
            await backend.aclose()
            lease.release()
            metrics.close()
            if auditor.enabled:
                auditor.store.close()
            log.info("service.stopped")

    docs = settings.public_docs
    app = FastAPI(
        title="Sandgate",
        version=__version__,
        description="Runs agent code in gVisor sandboxes and screens what goes in and out.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_handlers(app, on_refusal=audit_refusal)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health.router)
    app.include_router(execute.router)
    app.include_router(screen.router)
    app.include_router(policies.router)
    app.include_router(audit.router)
    app.include_router(metrics_api.router)
    return app
