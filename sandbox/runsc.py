"""The default backend: runsc direct (gVisor, ptrace platform), one fresh sandbox per execution.

Every sandbox is a `Slot` (`sandbox.slot`): a bundle, a container id and a host cgroup of its
own, all named after it and kept under this instance's state directory and cgroup parent, so
`reap()` finds and removes whatever a crash left without touching anyone else's sandboxes, and
`reap_orphans()` the slots of a dead sibling worker that no launcher of theirs will remove. For
a language with a runner, sandboxes can be started ahead (`sandbox.pool`): `run` claims a ready
one of the spec's class or, when there is none, starts one for the spec there and then. Either
way the code reaches it in a frame, and the slot is destroyed after that one execution.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shlex
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Self

import structlog

from sandbox.attachment import Attacher, no_attachment
from sandbox.base import (
    ExecutionResult,
    ExecutionSpec,
    MiB,
    OutputSink,
    SandboxBackend,
    SandboxSession,
    SandboxUnavailable,
    SessionSpec,
    SessionsUnsupported,
    Status,
)
from sandbox.bundle import safe_relative_path, write_bundle, write_config
from sandbox.cgroup import CGROUP_ROOT, CONTROLLERS
from sandbox.config import BackendConfig
from sandbox.host import Footprint
from sandbox.image import ImageError, ImageStore
from sandbox.languages import Language, language
from sandbox.pool import NO_POOL, Pool, PoolObserver, PoolOptions, SlotClass
from sandbox.runner import install_runner, runner_argv
from sandbox.session import RunscSession
from sandbox.slot import BootFailed, Runtime, Slot, launched, mark_owner, orphaned
from sandbox.slots import SandboxSlots

__all__ = ["REFILL_CPU_SHARES", "RunscBackend"]

log = structlog.get_logger(__name__)

REFILL_CPU_SHARES = 2  # the kernel's least weight: a refill takes only CPU nobody else wants


class RunscBackend(SandboxBackend):
    """Drives Debian's `runsc` directly; one sandbox per execution, optionally started ahead."""

    name = "runsc"

    def __init__(
        self,
        *,
        state_dir: Path,
        images: ImageStore,
        runsc: str = "runsc",
        platform: str = "ptrace",
        cgroup_root: Path = CGROUP_ROOT,
        attacher: Attacher = no_attachment,
        pool: PoolOptions = NO_POOL,
        slots: SandboxSlots | None = None,
        observer: PoolObserver | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.images = images
        self.runsc = runsc
        self.platform = platform
        self.instance = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
        self.root = state_dir / "runsc"
        self.run_dir = state_dir / "run"
        self.cgroup_root = cgroup_root
        self.cgroup_parent = f"sandgate/{self.instance}"
        self.attacher = attacher
        self.runtime = Runtime(
            runsc=runsc,
            root=self.root,
            platform=platform,
            cgroup_root=cgroup_root,
            cgroup_parent=self.cgroup_parent,
        )
        self.footprint = Footprint(
            cgroup_root=cgroup_root,
            cgroup_parent=self.cgroup_parent,
            directories=(("bundle", self.run_dir),),
            scratch=(self.root,),
            process_marker=f"--root={self.root}",
        )
        self.pool_options = pool
        self.pool = Pool(
            pool,
            boot=self._boot_ahead,
            retire=self._retire,
            slots=slots,
            observer=observer,
        )
        self._retiring: set[asyncio.Task[None]] = set()
        self._ahead: set[str] = set()  # slots started ahead, booting or ready, not yet claimed
        self._sessions: set[RunscSession] = set()

    @classmethod
    def from_config(cls, config: BackendConfig) -> Self:
        """runsc direct, with the settings' binary, platform and pool."""
        return cls(
            state_dir=config.state_dir,
            images=config.images,
            runsc=config.runsc_path,
            platform=config.runsc_platform,
            attacher=config.attacher or no_attachment,
            pool=config.pool,
            slots=config.slots,
            observer=config.observer,
        )

    # -- readiness, housekeeping, the pool's face ---------------------------------------------

    def checks(self) -> dict[str, str | None]:
        """runsc present, image built, cgroup v1 controllers mounted, state writable."""
        found = shutil.which(self.runsc)
        missing = [c for c in CONTROLLERS if not (self.cgroup_root / c / "tasks").exists()]
        try:
            self.images.rootfs("python")
            image: str | None = None
        except ImageError as exc:
            image = str(exc)
        return {
            "runsc": None if found else f"{self.runsc} not found (apt-get install runsc)",
            "image": image,
            "cgroups": f"cgroup v1 controllers missing: {missing}" if missing else None,
            "state_writable": None if os.access(self.state_dir, os.W_OK) else "not writable",
        }

    def reap(self) -> int:
        """Kill this instance's leftover runsc processes, remove their cgroups and bundles."""
        reaped = self.footprint.reap()
        if reaped:
            log.warning("sandbox.reaped", count=reaped, instance=self.instance)
        return reaped

    def leftovers(self) -> list[str]:
        """What of this instance is on the host (processes, cgroups, bundles), but for the
        sandboxes its pool keeps ready and those of live sessions."""
        return self.footprint.leftovers(keep=self._ahead | {s.slot.name for s in self._sessions})

    def warm(self, classes: Iterable[SlotClass]) -> None:
        """Keep these classes ready (when the pool is on); drain the others."""
        self.pool.warm(classes)

    def pool_state(self) -> dict[str, dict[str, int]]:
        """Per class kept warm: `ready` and `target`."""
        return self.pool.state()

    async def start(self) -> None:
        """Remove what dead sibling workers left, start the pool's refill."""
        await self.reap_orphans()
        self.pool.start()

    async def reap_orphans(self) -> int:
        """Remove the slots whose worker died with nobody to remove them (killed before their
        launcher ran, or together with it), and cgroups whose slot is gone; the slots of live
        workers are left alone, so any worker may call this at any time. Returns how many
        were removed."""
        orphans = await asyncio.to_thread(self._orphans)
        for bundle in orphans:
            log.warning("sandbox.orphan_reaped", sandbox=bundle.name, instance=self.instance)
            await Slot(self.runtime, bundle, runner=False, ahead=False).destroy()
        return len(orphans)

    def _orphans(self) -> list[Path]:
        """Bundles of dead workers with no launcher, and (as bundles no longer there) the
        cgroups without a bundle: a slot makes its bundle before its cgroup and removes it
        after, so such a cgroup belongs to no slot."""
        bundles = sorted(self.run_dir.iterdir()) if self.run_dir.is_dir() else []
        found = [b for b in bundles if orphaned(b) and not launched(b)]
        names = {c.name for c in self.footprint.cgroups()}
        return found + [self.run_dir / n for n in sorted(names) if not (self.run_dir / n).exists()]

    async def settle(self) -> None:
        """Wait until every finished sandbox is removed."""
        while self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop the refill, remove the ready sandboxes and the sessions' (if any is left), wait
        for every removal."""
        await self.pool.aclose()
        for session in list(self._sessions):
            await session.close()
        await self.settle()
        await self.reap_orphans()
        self.close()

    # -- one execution ------------------------------------------------------------------------

    async def run(
        self, spec: ExecutionSpec, on_output: OutputSink | None = None
    ) -> ExecutionResult:
        """Run `spec` in a ready sandbox of its class, or in one started for it now."""
        lang = language(spec.language)
        cls = SlotClass.of(spec)
        try:
            rootfs = self.images.rootfs(cls.image)
        except ImageError as exc:
            raise SandboxUnavailable(str(exc)) from exc
        for name in spec.files:
            safe_relative_path(name)  # BundleError before a sandbox is taken for nothing
        slot = self.pool.claim(cls)
        if slot is not None:
            self._ahead.discard(slot.name)
        else:
            try:
                slot = await self._boot_cold(spec, lang, rootfs)
            except BootFailed as exc:
                return ExecutionResult(
                    status=Status.SANDBOX_ERROR, detail=f"the sandbox runtime failed: {exc}"
                )
        log.info(
            "sandbox.assigned",
            execution_id=spec.execution_id,
            sandbox=slot.name,
            started_ahead=slot.ahead,
        )
        try:
            result = await slot.execute(spec, on_output)
            return result.model_copy(update={"egress": slot.attachment.attempts()})
        finally:
            self._retire(slot)

    async def start_session(self, spec: SessionSpec) -> SandboxSession:
        """A sandbox started for the session (never a pooled one), its runner in mode
        `session`, with the session's memory cap and CPU share for its whole life."""
        lang = language(spec.language)
        if lang.runner is None:
            raise SessionsUnsupported(f"{lang.name} has no runner, so no sessions on runsc")
        as_run = ExecutionSpec(
            execution_id=spec.session_id,
            code="",
            language=spec.language,
            image=spec.image,
            limits=spec.limits,
            egress=spec.egress,
        )
        try:
            rootfs = self.images.rootfs(as_run.image_name())
        except ImageError as exc:
            raise SandboxUnavailable(str(exc)) from exc
        try:
            slot = await self._boot_cold(as_run, lang, rootfs)
        except BootFailed as exc:
            raise SandboxUnavailable(f"the session's sandbox did not start: {exc}") from exc
        if "session" not in slot.features:
            self._retire(slot)
            raise SessionsUnsupported(f"the {lang.name} runner holds no sessions")
        try:
            slot.cgroup.set_limits(memory_bytes=spec.limits.memory_mb * MiB, cpus=spec.limits.cpus)
        except OSError as exc:
            self._retire(slot)
            raise SandboxUnavailable(f"the session's limits cannot be set: {exc}") from exc
        session = RunscSession(slot, spec, self._sessions.discard)
        self._sessions.add(session)
        log.info("sandbox.session_started", session_id=spec.session_id, sandbox=slot.name)
        return session

    def _retire(self, slot: Slot) -> None:
        """Destroy `slot` in the background; `settle` waits for it."""
        self._ahead.discard(slot.name)
        task = asyncio.create_task(slot.destroy())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _new_slot(self, lang: Language, *, ahead: bool) -> Slot:
        bundle = self.run_dir / uuid.uuid4().hex
        (bundle / "input").mkdir(parents=True)
        mark_owner(bundle)
        slot = Slot(self.runtime, bundle, runner=lang.runner is not None, ahead=ahead)
        if ahead:
            self._ahead.add(slot.name)
        return slot

    async def _boot_ahead(self, cls: SlotClass) -> Slot:
        """A pooled sandbox of `cls`: its runner started with the pool's and the image's
        pre-imports (and the class's memory cap, for a command that holds it), at the refill's
        low CPU weight, waiting for a frame."""
        lang = language(cls.language)
        rootfs = await asyncio.to_thread(self.images.rootfs, cls.image)
        slot = self._new_slot(lang, ahead=True)
        try:
            install_runner(slot.bundle / "input", lang)
            write_config(
                slot.bundle,
                args=runner_argv(
                    lang,
                    memory_mb=cls.memory_mb or None,
                    preimport=self.pool_options.preimports(cls),
                ),
                language=lang,
                rootfs=rootfs,
                cgroups_path=slot.cgroup.path,
                max_processes=cls.max_processes,
                disk_mb=cls.disk_mb,
                memory_bytes=None,
                attachment=slot.attachment,
            )
            slot.cgroup.create(  # the host's backstop counts the runner's own tasks too
                memory_bytes=None,
                max_processes=lang.task_limit(cls.max_processes),
                cpus=None,
                shares=REFILL_CPU_SHARES,
            )
            await slot.launch()
            await slot.wait_ready()
        except BaseException:
            self._retire(slot)
            raise
        return slot

    async def _boot_cold(self, spec: ExecutionSpec, lang: Language, rootfs: Path) -> Slot:
        """A sandbox started for `spec` now: its runner (no pre-imports: nothing is gained
        by them on the request's own path), or for a language without one, its code."""
        slot = self._new_slot(lang, ahead=False)
        try:
            attachment = await slot.attach(self.attacher(spec, slot.bundle))
            if lang.runner is not None:
                install_runner(slot.bundle / "input", lang)
                args = runner_argv(lang, memory_mb=spec.limits.memory_mb)
                if attachment.setup:  # the egress forwarder starts first
                    args = ["/bin/sh", "-c", f"set -e\n{attachment.setup}\nexec {shlex.join(args)}"]
                write_config(
                    slot.bundle,
                    args=args,
                    language=lang,
                    rootfs=rootfs,
                    cgroups_path=slot.cgroup.path,
                    max_processes=spec.limits.max_processes,
                    disk_mb=spec.limits.disk_mb,
                    memory_bytes=None,
                    attachment=attachment,
                )
            else:
                write_bundle(
                    slot.bundle,
                    spec,
                    language=lang,
                    rootfs=rootfs,
                    cgroups_path=slot.cgroup.path,
                    attachment=attachment,
                )
            slot.cgroup.create(
                memory_bytes=None,
                max_processes=lang.task_limit(spec.limits.max_processes),
                cpus=None,
            )
            await slot.launch()
            if slot.runner:
                await slot.wait_ready()
        except BaseException:
            self._retire(slot)
            raise
        return slot
