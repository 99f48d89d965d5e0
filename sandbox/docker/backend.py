"""The Docker backend: one container per execution, on a Docker runtime (gVisor's `runsc`).

Each container is created with no network, a read-only image root, uid 65534, no capabilities,
`no-new-privileges`, memory/CPU/pids limits and size-capped tmpfs, labelled `sandgate=<instance>`
(derived from the state directory, like the runsc backend's) so `reap()` removes only this
instance's leftovers. Its host cgroup is created by the backend under `sandgate-docker/<instance>`
before the start (runsc then leaves it alone and does not delete it on exit), so the counters
that classify the outcome (OOM kills, refused forks, CPU time, peak memory) are read after exit,
exactly as the runsc backend reads its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
from collections import deque
from pathlib import Path
from typing import Any, Self

import psutil
import structlog
from docker.errors import DockerException, ImageNotFound, NotFound

from sandbox.attachment import Attacher, no_attachment
from sandbox.base import (
    ExecutionResult,
    ExecutionSpec,
    OutputSink,
    SandboxBackend,
    SandboxUnavailable,
)
from sandbox.cgroup import CGROUP_ROOT, CONTROLLERS, SandboxCgroup
from sandbox.config import BackendConfig
from sandbox.docker._client import DAEMON_ERRORS, DockerCalls, short
from sandbox.docker._spec import container_config, write_docker_inputs
from sandbox.docker._supervise import supervise, thaw
from sandbox.host import Footprint
from sandbox.image import ImageError, ImageStore
from sandbox.languages import language
from sandbox.runner.protocol import new_token
from sandbox.supervision import KILL_GRACE_S

__all__ = ["DockerBackend"]

log = structlog.get_logger(__name__)


class DockerBackend(SandboxBackend):
    """Runs each execution as a labelled container on the Docker daemon at `base_url`."""

    name = "docker"

    def __init__(
        self,
        *,
        state_dir: Path,
        images: ImageStore,
        runtime: str = "runsc",
        uds_runtime: str | None = None,
        allow_runc: bool = False,
        base_url: str | None = None,
        cgroup_root: Path = CGROUP_ROOT,
        attacher: Attacher | None = None,
        api_timeout_s: float = 30.0,
    ) -> None:
        self.state_dir = state_dir
        self.images = images
        self.runtime = runtime
        # Sandboxes that connect to a bound Unix socket (the egress proxy's) need gVisor's
        # `--host-uds=open`; only they get the runtime registered with it.
        self.uds_runtime = uds_runtime or (runtime if runtime == "runc" else f"{runtime}-uds")
        self.allow_runc = allow_runc
        self.instance = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:12]
        self.run_dir = state_dir / "docker-run"
        self.cgroup_root = cgroup_root
        self.cgroup_parent = f"sandgate-docker/{self.instance}"
        self.attacher = attacher
        self.footprint = Footprint(
            cgroup_root=cgroup_root,
            cgroup_parent=self.cgroup_parent,
            directories=(("run dir", self.run_dir),),
        )
        self._calls = DockerCalls(base_url, api_timeout_s)
        self.api = self._calls.api
        self._quick = self._calls.quick  # readiness checks must answer fast
        self._ours: deque[str] = deque(maxlen=4096)  # container ids, to find runsc processes
        self._unremoved: set[str] = set()  # removal failed (daemon down): retried later
        if runtime == "runc":
            log.warning("sandbox.docker.runc", allowed=allow_runc, detail=self.runc_warning)

    @classmethod
    def from_config(cls, config: BackendConfig) -> Self:
        """The daemon, runtimes and cgroup tree the settings name."""
        return cls(
            state_dir=config.state_dir,
            images=config.images,
            runtime=config.docker_runtime,
            uds_runtime=config.docker_uds_runtime,
            allow_runc=config.docker_allow_runc,
            base_url=config.docker_url,
            cgroup_root=config.docker_cgroup_root,
            attacher=config.attacher,
        )

    runc_warning = (
        "runtime runc shares the host kernel with the sandboxed code (no gVisor): "
        "containers are NOT a security boundary for untrusted code"
    )

    def close(self) -> None:
        """Close the connections to the daemon (the service's shutdown; tests)."""
        self._calls.close()

    # -- readiness and housekeeping -------------------------------------------------------

    def warnings(self) -> list[str]:
        """Conditions that do not stop the service but an operator must know about."""
        return [self.runc_warning] if self.runtime == "runc" else []

    def checks(self) -> dict[str, str | None]:
        """Daemon answering, runtime registered (and not runc unless allowed), image imported."""
        result: dict[str, str | None] = {"docker": None, "runtime": None, "image": None}
        try:
            runtimes = self._quick.info().get("Runtimes", {})
        except DAEMON_ERRORS as exc:
            self._quick.close()  # drop pooled connections to the dead daemon, not leak them
            down = f"the Docker daemon at {self.api.base_url} is not answering ({short(exc)})"
            return {**result, "docker": down, "runtime": down, "image": down}
        missing = [r for r in (self.runtime, self.uds_runtime) if r not in runtimes]
        if missing:
            result["runtime"] = (
                f"runtime {missing[0]!r} is not registered with Docker (have: "
                f"{', '.join(sorted(runtimes))}); add it to /etc/docker/daemon.json (.ci/docker)"
            )
        elif self.runtime == "runc" and not self.allow_runc:
            result["runtime"] = self.runc_warning + "; set SANDGATE_DOCKER_ALLOW_RUNC=true to allow"
        result["image"] = self._image_problem("python")
        missing = [c for c in CONTROLLERS if not (self.cgroup_root / c / "tasks").exists()]
        if missing:
            result["cgroups"] = f"cgroup v1 controllers missing under {self.cgroup_root}: {missing}"
        elif not all(os.access(self.cgroup_root / c, os.W_OK) for c in CONTROLLERS):
            result["cgroups"] = f"the cgroup tree at {self.cgroup_root} is not writable"
        else:
            result["cgroups"] = None
        self._retry_removals()
        return result

    def _image_problem(self, name: str) -> str | None:
        try:
            tag = self.images.docker_tag(name)
            self._quick.inspect_image(tag)
        except ImageNotFound:
            return (
                f"Docker image {tag} is missing for the current recipe; "
                f"run `sandgate image build {name} --docker`"
            )
        except ImageError as exc:
            return str(exc)
        except DAEMON_ERRORS as exc:
            return f"the Docker daemon is not answering ({short(exc)})"
        return None

    def _labelled(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._quick.containers(
            all=True, filters={"label": f"sandgate={self.instance}"}
        )
        return found

    def _retry_removals(self) -> None:
        for cid in list(self._unremoved):
            with contextlib.suppress(*DAEMON_ERRORS):
                with contextlib.suppress(NotFound):
                    self._quick.remove_container(cid, force=True)
                self._unremoved.discard(cid)

    def reap(self) -> int:
        """Remove this instance's labelled containers, cgroups and run directories."""
        reaped = 0
        try:
            for item in self._labelled():
                with contextlib.suppress(NotFound):
                    self.api.remove_container(item["Id"], force=True)
                    reaped += 1
        except DAEMON_ERRORS as exc:
            log.error("sandbox.docker.reap_failed", error=short(exc))
        reaped += self.footprint.reap()
        if reaped:
            log.warning("sandbox.reaped", count=reaped, instance=self.instance, backend="docker")
        return reaped

    def leftovers(self) -> list[str]:
        """What of this instance is still there: containers, runsc processes, cgroups, dirs."""
        try:
            found = [f"container {c['Id'][:12]} {c.get('State', '')}" for c in self._labelled()]
        except DAEMON_ERRORS as exc:
            self._quick.close()
            found = [f"docker daemon not answering, containers unknown ({short(exc)})"]
        ids = set(self._ours)
        for proc in psutil.process_iter(["cmdline"]):
            with contextlib.suppress(psutil.Error):
                cmdline = proc.info["cmdline"] or []
                if cmdline and ("runsc" in cmdline[0] or "containerd-shim" in cmdline[0]):
                    joined = " ".join(cmdline)
                    if any(cid in joined for cid in ids):
                        found.append(f"process {proc.pid}")
        return found + self.footprint.leftovers()

    # -- one execution --------------------------------------------------------------------

    async def run(
        self, spec: ExecutionSpec, on_output: OutputSink | None = None
    ) -> ExecutionResult:
        """Run `spec` in a fresh container; everything it made is gone when this returns."""
        if self.runtime == "runc" and not self.allow_runc:
            raise SandboxUnavailable(self.runc_warning + "; refusing to run")
        if spec.egress is not None and self.attacher is None:
            raise SandboxUnavailable("egress was asked for but this backend has no egress proxy")
        lang = language(spec.language)
        try:
            image = self.images.docker_tag(spec.image_name())
        except ImageError as exc:
            raise SandboxUnavailable(str(exc)) from exc
        directory = self.run_dir / spec.execution_id
        name = f"sandgate-{self.instance}-{spec.execution_id}"
        cgroup: SandboxCgroup | None = None
        attach = self.attacher or no_attachment
        try:
            directory.mkdir(parents=True)
            token = new_token() if lang.runner else None
            write_docker_inputs(directory / "input", spec, lang, token)
            async with attach(spec, directory) as attachment:
                create, host = container_config(
                    spec,
                    language=lang,
                    inputs=directory / "input",
                    attachment=attachment,
                    runtime=self.uds_runtime if attachment.needs_host_uds else self.runtime,
                    cgroup_parent="/" + self.cgroup_parent,
                    labels={"sandgate": self.instance, "sandgate.execution": spec.execution_id},
                )
                try:
                    created = await self._calls.call(
                        self.api.create_container,
                        image,
                        name=name,
                        host_config=self.api.create_host_config(**host),
                        **create,
                    )
                except ImageNotFound as exc:
                    raise SandboxUnavailable(
                        f"Docker image {image} is missing; "
                        f"run `sandgate image build {spec.image_name()} --docker`"
                    ) from exc
                cid: str = created["Id"]
                self._ours.append(cid)
                cgroup = SandboxCgroup(self.cgroup_parent, cid, root=self.cgroup_root)
                try:
                    cgroup.create(
                        memory_bytes=spec.limits.memory_mb << 20,
                        max_processes=spec.limits.max_processes,
                        cpus=spec.limits.cpus,
                    )
                except OSError as exc:
                    raise SandboxUnavailable(
                        f"cannot make the sandbox's cgroup under {self.cgroup_root} ({exc}); "
                        "the service needs the host's cgroup v1 tree, writable"
                    ) from exc
                result = await supervise(
                    self._calls,
                    spec,
                    cid,
                    cgroup,
                    attachment,
                    self._freezer(cid),
                    token,
                    on_output,
                )
                return result.model_copy(update={"egress": attachment.attempts()})
        finally:
            await self._teardown(name, cgroup, directory)

    def _freezer(self, cid: str) -> Path:
        """The container's freezer cgroup (runsc makes it; the backend makes the others)."""
        return self.cgroup_root / "freezer" / self.cgroup_parent / cid

    async def _teardown(self, name: str, cgroup: SandboxCgroup | None, directory: Path) -> None:
        """Remove the container (by name: also one whose creation raced a cancellation), its
        cgroups and its input directory, whatever happened."""
        try:
            await asyncio.wait_for(
                self._calls.call(self.api.remove_container, name, force=True), 2 * KILL_GRACE_S + 10
            )
        except NotFound:
            pass
        except (SandboxUnavailable, DockerException, TimeoutError) as exc:
            self._unremoved.add(name)
            log.error("sandbox.docker.remove_failed", container=name, error=short(exc))
        if cgroup is not None:
            thaw(self._freezer(cgroup.path.rsplit("/", 1)[-1]))
            cgroup.kill()
            if not await asyncio.to_thread(cgroup.remove):
                log.error("sandbox.cgroup_left", cgroup=cgroup.path)
        await asyncio.to_thread(shutil.rmtree, directory, True)
