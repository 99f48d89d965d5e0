"""The default backend: `runsc run` on a fresh OCI bundle per execution (gVisor, ptrace platform).

Each execution gets its own bundle directory, container id and host cgroup, all named after
the execution id and kept under this service instance's state directory and cgroup parent, so
`reap()` can find and remove whatever a crash left without touching anyone else's sandboxes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
from collections.abc import Awaitable
from pathlib import Path
from typing import Self

import structlog

from sandbox.attachment import Attacher, Attachment, no_attachment
from sandbox.base import (
    ExecutionResult,
    ExecutionSpec,
    OutputSink,
    SandboxBackend,
    SandboxUnavailable,
)
from sandbox.bundle import write_bundle
from sandbox.cgroup import CGROUP_ROOT, CONTROLLERS, SandboxCgroup
from sandbox.config import BackendConfig
from sandbox.host import Footprint
from sandbox.image import ImageError, ImageStore
from sandbox.languages import language
from sandbox.supervision import KILL_GRACE_S, Watch

__all__ = ["RunscBackend"]

log = structlog.get_logger(__name__)


class RunscBackend(SandboxBackend):
    """Drives Debian's `runsc` directly; one sandbox per execution."""

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
        self.footprint = Footprint(
            cgroup_root=cgroup_root,
            cgroup_parent=self.cgroup_parent,
            directories=(("bundle", self.run_dir),),
            scratch=(self.root,),
            process_marker=f"--root={self.root}",
        )

    @classmethod
    def from_config(cls, config: BackendConfig) -> Self:
        """runsc direct, with the settings' binary and platform."""
        return cls(
            state_dir=config.state_dir,
            images=config.images,
            runsc=config.runsc_path,
            platform=config.runsc_platform,
            attacher=config.attacher or no_attachment,
        )

    # -- readiness and housekeeping -------------------------------------------------------

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
        """What of this instance is still on the host (processes, cgroups, bundles)."""
        return self.footprint.leftovers()

    # -- one execution --------------------------------------------------------------------

    async def run(
        self, spec: ExecutionSpec, on_output: OutputSink | None = None
    ) -> ExecutionResult:
        """Run `spec` in a fresh sandbox; everything it made is gone when this returns."""
        lang = language(spec.language)
        try:
            rootfs = self.images.rootfs(spec.image_name())
        except ImageError as exc:
            raise SandboxUnavailable(str(exc)) from exc
        bundle = self.run_dir / spec.execution_id
        cgroup = SandboxCgroup(self.cgroup_parent, spec.execution_id, root=self.cgroup_root)
        container = f"sg-{spec.execution_id}"
        try:
            bundle.mkdir(parents=True)
            async with self.attacher(spec, bundle) as attachment:
                write_bundle(
                    bundle,
                    spec,
                    language=lang,
                    rootfs=rootfs,
                    cgroups_path=cgroup.path,
                    attachment=attachment,
                )
                cgroup.create(
                    memory_bytes=spec.limits.memory_mb << 20,
                    max_processes=spec.limits.max_processes,
                    cpus=spec.limits.cpus,
                )
                result = await self._supervise(
                    spec, bundle, container, cgroup, attachment, on_output
                )
                return result.model_copy(update={"egress": attachment.attempts()})
        finally:
            await self._teardown(container, cgroup, bundle)

    def _command(self, bundle: Path, container: str, *extra: str) -> list[str]:
        return [
            self.runsc,
            f"--root={self.root}",
            f"--platform={self.platform}",
            "--network=none",
            f"--log={bundle / 'runsc.log'}",
            "--log-format=json",
            *extra,
            "run",
            f"--bundle={bundle}",
            container,
        ]

    async def _supervise(
        self,
        spec: ExecutionSpec,
        bundle: Path,
        container: str,
        cgroup: SandboxCgroup,
        attachment: Attachment,
        on_output: OutputSink | None,
    ) -> ExecutionResult:
        watch = Watch(spec.limits, cgroup, on_output)
        uds = ["--host-uds=open"] if attachment.needs_host_uds else []
        proc = await asyncio.create_subprocess_exec(
            *self._command(bundle, container, *uds),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")},
            start_new_session=True,
        )
        assert proc.stdin and proc.stdout and proc.stderr
        watch.start(proc.stdout, proc.stderr, _feed(proc.stdin, spec.stdin))
        waiter = asyncio.create_task(proc.wait())
        try:
            if not await watch.until_done(waiter):
                await self._kill(container, cgroup, proc, waiter)
            await watch.drain()
        finally:
            watch.cancel()
            if proc.returncode is None:  # cancelled or failed: never leave it running
                watch.trigger("cancelled")
                await self._kill(container, cgroup, proc, waiter)
        return watch.result(
            proc.returncode,
            cgroup.usage(),
            extra_processes=attachment.processes,
            runtime_errors=_runtime_errors(bundle / "runsc.log"),
            backend=self.name,
        )

    async def _kill(
        self,
        container: str,
        cgroup: SandboxCgroup,
        proc: asyncio.subprocess.Process,
        waiter: Awaitable[int],
    ) -> None:
        """Stop the sandbox: runsc's own kill first, then SIGKILL to everything in its cgroup."""
        await _quiet(self.runsc, f"--root={self.root}", "kill", "--all", container, "KILL")
        try:
            await asyncio.wait_for(asyncio.shield(waiter), KILL_GRACE_S)
        except TimeoutError:
            cgroup.kill()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(asyncio.shield(waiter), KILL_GRACE_S)

    async def _teardown(self, container: str, cgroup: SandboxCgroup, bundle: Path) -> None:
        """Remove the container's runsc state, its cgroups and its bundle, whatever happened."""
        if self.root.is_dir() and any(p.name.startswith(container) for p in self.root.iterdir()):
            await _quiet(self.runsc, f"--root={self.root}", "delete", "--force", container)
        cgroup.kill()
        if not await asyncio.to_thread(cgroup.remove):
            log.error("sandbox.cgroup_left", cgroup=cgroup.path)
        await asyncio.to_thread(shutil.rmtree, bundle, True)


async def _feed(stdin: asyncio.StreamWriter, text: str | None) -> None:
    with contextlib.suppress(ConnectionError, BrokenPipeError):
        if text:
            stdin.write(text.encode("utf-8"))
            await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


async def _quiet(*cmd: str) -> int:
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await proc.wait()


def _runtime_errors(log_file: Path) -> list[str]:
    """Error-level messages runsc itself logged (never the code's own output)."""
    errors = []
    with contextlib.suppress(OSError):
        for raw in log_file.read_text(errors="replace").replace("}{", "}\n{").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(raw)
                if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                    errors.append(str(entry.get("msg", ""))[:500])
    return errors
