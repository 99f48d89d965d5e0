"""One runsc sandbox, started detached under the subreaper launcher, used for one execution.

A slot is booted (its bundle laid out, its cgroup made, `runsc run -detach` started; a runner
then reports `ready` and waits for its frame), then `execute`d once: the request's memory and
CPU limits are written into its cgroup, its counters restarted, the frame and stdin written,
and the run watched and classified as every backend's is (`sandbox.supervision`). `destroy`
removes it, whatever state it is in. Nothing of a slot is ever reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import psutil
import structlog

from sandbox.attachment import Attachment
from sandbox.base import ExecutionResult, ExecutionSpec, MiB, OutputSink, Status
from sandbox.cgroup import SandboxCgroup
from sandbox.host import processes_with
from sandbox.languages import language
from sandbox.runner.protocol import Record, RecordSplitter, execute_frame, new_token, parse_ready
from sandbox.supervision import KILL_GRACE_S, Watch

__all__ = ["BOOT_TIMEOUT_S", "BootFailed", "Runtime", "Slot", "launched", "mark_owner", "orphaned"]

log = structlog.get_logger(__name__)

BOOT_TIMEOUT_S = 30.0
SUBREAPER = Path(__file__).with_name("subreaper.py")
_HOST_ENV = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
OWNER = "owner"  # the bundle's file naming the worker process that made the slot


def _process_mark(pid: int) -> str:
    """A process's pid and start time: unique on the host even when the pid is reused."""
    return f"{pid} {psutil.Process(pid).create_time()!r}"


def orphaned(bundle: Path) -> bool:
    """Whether the worker that made this slot is gone (it died before the slot's launcher ran,
    or together with it), so that nobody else will ever remove the slot. A bundle not yet
    marked is not an orphan: its worker is making it."""
    try:
        mark = (bundle / OWNER).read_text()
        return _process_mark(int(mark.split()[0])) != mark
    except (OSError, ValueError, IndexError):
        return False
    except psutil.NoSuchProcess:
        return True


def mark_owner(bundle: Path) -> None:
    """Name this process as the maker of the slot in `bundle`."""
    (bundle / OWNER).write_text(_process_mark(os.getpid()))


def launched(bundle: Path) -> bool:
    """Whether a launcher of the slot in `bundle` is alive (it removes its slot itself when its
    worker dies)."""
    return any(str(SUBREAPER) in p.info["cmdline"] for p in processes_with(str(bundle)))


class BootFailed(Exception):
    """A sandbox did not start (runsc failed, or its runner never reported ready)."""


@dataclass(frozen=True)
class Runtime:
    """How one backend instance runs runsc, and where its sandboxes live on the host."""

    runsc: str
    root: Path
    platform: str
    cgroup_root: Path
    cgroup_parent: str

    def command(self, bundle: Path, container: str, *, host_uds: bool) -> list[str]:
        """`runsc run -detach` for a bundle (its pid file and log inside the bundle)."""
        return [
            self.runsc,
            f"--root={self.root}",
            f"--platform={self.platform}",
            "--network=none",
            f"--log={bundle / 'runsc.log'}",
            "--log-format=json",
            *(["--host-uds=open"] if host_uds else []),
            "run",
            "-detach",
            f"--bundle={bundle}",
            f"--pid-file={bundle / 'sandbox.pid'}",
            container,
        ]

    async def quiet(self, *args: str) -> int:
        """A runsc subcommand on this instance's root, output discarded."""
        proc = await asyncio.create_subprocess_exec(
            self.runsc,
            f"--root={self.root}",
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=_HOST_ENV,
        )
        return await proc.wait()


class Slot:
    """One sandbox: `launch`, then (for a runner) `wait_ready`, `execute` once, `destroy`."""

    def __init__(self, runtime: Runtime, bundle: Path, *, runner: bool, ahead: bool) -> None:
        self.runtime = runtime
        self.bundle = bundle
        self.name = bundle.name
        self.container = f"sg-{self.name}"
        self.runner = runner
        self.ahead = ahead
        self.cgroup = SandboxCgroup(runtime.cgroup_parent, self.name, root=runtime.cgroup_root)
        self.attachment = Attachment()
        self.exited: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.used = False
        self.features: frozenset[str] = frozenset()  # what its runner announced in `ready`
        self._process: asyncio.subprocess.Process | None = None
        self._status: asyncio.Task[None] | None = None
        self._closers = contextlib.AsyncExitStack()

    @property
    def alive(self) -> bool:
        """Started and not ended (an idle slot whose sandbox died is of no use)."""
        return self._process is not None and not self.exited.done()

    async def attach(self, attacher: AbstractAsyncContextManager[Attachment]) -> Attachment:
        """Enter an attacher's context for the slot's life (it ends when the slot is
        destroyed); what it yields is bound in when the slot is launched."""
        self.attachment = await self._closers.enter_async_context(attacher)
        return self.attachment

    # -- start --------------------------------------------------------------------------------

    async def launch(self) -> None:
        """Start the sandbox under the subreaper; its bundle and cgroup must be in place."""
        status_read, status_write = os.pipe()
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-S",
                str(SUBREAPER),
                str(status_write),
                str(self.bundle),
                ":".join(str(d) for d in self.cgroup.directories()),
                *self.runtime.command(
                    self.bundle, self.container, host_uds=self.attachment.needs_host_uds
                ),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(status_write,),
                env=_HOST_ENV,
                start_new_session=True,
            )
        except BaseException:
            os.close(status_read)
            raise
        finally:
            os.close(status_write)
        self._status = asyncio.create_task(self._follow(status_read))

    async def _follow(self, fd: int) -> None:
        """Read the launcher's status lines: the sandbox's exit code ends `exited`."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0)
        )
        try:
            while line := await reader.readline():
                event, _, value = line.decode(errors="replace").partition(" ")
                if event in ("exit", "failed") and not self.exited.done():
                    self.exited.set_result(_exit_code(value) if event == "exit" else None)
        finally:
            transport.close()
            if not self.exited.done():
                self.exited.set_result(None)

    async def wait_ready(self, timeout: float = BOOT_TIMEOUT_S) -> Record:
        """The runner's `ready` record; raises BootFailed if the sandbox ends or says
        anything else first, or nothing within `timeout`."""
        _, stdout, _ = self.streams()
        line = asyncio.ensure_future(stdout.readline())
        done, _ = await asyncio.wait(
            (line, self.exited), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if line in done:
            if (record := parse_ready(line.result())) is not None:
                features = record.get("features")
                self.features = frozenset(f for f in features or () if isinstance(f, str))
                return record
            raise BootFailed(
                f"the runner's first line is not `ready`: {line.result()[:200]!r} "
                f"({await self._why()})"
            )
        line.cancel()
        if not done:
            raise BootFailed(f"the sandbox did not start within {timeout:g} s")
        raise BootFailed("the sandbox ended before its runner was ready: " + await self._why())

    async def _why(self) -> str:
        """What the sandbox said on its way down: runsc's errors, else its stderr's start."""
        errors = runtime_errors(self.bundle / "runsc.log")
        if errors:
            return errors[-1]
        _, _, stderr = self.streams()
        with contextlib.suppress(TimeoutError):
            said = await asyncio.wait_for(stderr.read(2000), 1.0)
            return said.decode(errors="replace").strip() or "no output"
        return "no output"

    def streams(self) -> tuple[asyncio.StreamWriter, asyncio.StreamReader, asyncio.StreamReader]:
        """The sandbox's stdin, stdout and stderr (for a session, which keeps them open)."""
        process = self._process
        assert process and process.stdin and process.stdout and process.stderr
        return process.stdin, process.stdout, process.stderr

    # -- the one execution --------------------------------------------------------------------

    async def execute(
        self, spec: ExecutionSpec, on_output: OutputSink | None = None
    ) -> ExecutionResult:
        """Run `spec` here (its code in a frame, for a runner; else already in the bundle);
        `on_output` follows the output as it is produced."""
        assert not self.used
        stdin_pipe, stdout, stderr = self.streams()
        self.used = True
        limits = spec.limits
        try:
            self.cgroup.set_limits(memory_bytes=limits.memory_mb * MiB, cpus=limits.cpus)
            self.cgroup.reset_counters()
        except OSError as exc:  # a memory limit below what the idle sandbox already uses
            return ExecutionResult(
                status=Status.SANDBOX_ERROR,
                detail=f"the sandbox could not be given its limits ({exc.strerror or exc}); "
                f"memory_mb {limits.memory_mb} may be below what the sandbox needs",
            )
        watch = Watch(limits, self.cgroup, on_output)
        stdin = (spec.stdin or "").encode("utf-8")
        splitter = None
        if self.runner:
            token = new_token()
            stdin = execute_frame(spec, token, self.features) + stdin
            splitter = RecordSplitter(token, watch.on_record)
        feed = _feed(stdin_pipe, stdin)
        watch.start(stdout, stderr, feed, splitter=splitter)
        try:
            if not await watch.until_done(self.exited):
                await self.kill()
            await watch.drain()
        finally:
            watch.cancel()
            if not self.exited.done():  # cancelled or failed: never leave it running
                watch.trigger("cancelled")
                await self.kill()
        code = self.exited.result()
        errors = [] if code == 0 else runtime_errors(self.bundle / "runsc.log")
        if code is None and not errors:
            errors = ["the sandbox's launcher ended without its exit status"]
        return watch.result(
            code,
            self.cgroup.usage(),
            extra_processes=self.attachment.processes + language(spec.language).helper_processes,
            runtime_errors=errors,
            backend="runsc",
        )

    # -- the end ------------------------------------------------------------------------------

    def _signal_all(self) -> None:
        """SIGKILL the sandbox's host processes: all in its cgroup, and all the launcher has
        (it is their subreaper, so none escapes it; the cgroup misses a half-started one)."""
        self.cgroup.kill()
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(psutil.Error):
                for child in psutil.Process(self._process.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.kill()

    async def kill(self) -> None:
        """Kill the sandbox and wait until the launcher has its exit status."""
        self._signal_all()
        try:
            await asyncio.wait_for(asyncio.shield(self.exited), KILL_GRACE_S)
        except TimeoutError:
            log.warning("sandbox.kill_escalated", sandbox=self.name)
            await self.runtime.quiet("kill", "--all", self.container, "KILL")
            self._signal_all()
            await asyncio.wait_for(asyncio.shield(self.exited), KILL_GRACE_S)

    async def destroy(self) -> None:
        """Remove everything of the slot from the host, whatever state it is in: its cgroup
        and bundle go even when stopping its processes failed or was cancelled."""
        try:
            await self._stop()
        except BaseException:
            log.exception("sandbox.stop_failed", sandbox=self.name)
            self._signal_all()
            raise
        finally:
            try:
                if not await asyncio.shield(asyncio.to_thread(self.cgroup.remove)):
                    held = await asyncio.to_thread(self.cgroup.remaining)
                    log.error("sandbox.cgroup_left", cgroup=self.cgroup.path, tasks=held)
                await asyncio.shield(asyncio.to_thread(_remove_tree, self.bundle))
                if self.bundle.exists():
                    left = sorted(p.name for p in self.bundle.iterdir())
                    log.error("sandbox.bundle_left", sandbox=self.name, entries=left[:20])
            finally:
                await self._closers.aclose()

    async def _stop(self) -> None:
        """End the sandbox's processes and remove runsc's state of it."""
        if self._process is not None:
            if not self.exited.done():
                with contextlib.suppress(TimeoutError):
                    await self.kill()
            try:
                await asyncio.wait_for(self._process.wait(), 2 * KILL_GRACE_S)
            except TimeoutError:
                self._signal_all()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                await self._process.wait()
        if self._status is not None:
            with contextlib.suppress(Exception):
                await self._status
        state = list(self.runtime.root.glob(f"{self.container}*"))
        if state and not self._all_gone():
            await self.runtime.quiet("delete", "--force", self.container)
        for left in self.runtime.root.glob(f"{self.container}*"):
            left.unlink(missing_ok=True)  # the lock file runsc delete leaves

    def _all_gone(self) -> bool:
        """Whether nothing of the sandbox runs any more: its launcher ended well (so it reaped
        every process of the sandbox) and its cgroup holds no task. Then runsc's state files
        are all that is left of it, and removing them is what `runsc delete` would do, without
        its ~10 ms of CPU beside the next request."""
        process = self._process
        return process is not None and process.returncode == 0 and self.cgroup.process_count() == 0


def _remove_tree(path: Path) -> None:
    """`shutil.rmtree`, once more if it failed: under the service an rmtree once died of EBADF
    closing its own directory descriptor (another descriptor closed twice somewhere in the
    process; not found yet) and left the bundle."""
    for _ in range(2):
        with contextlib.suppress(OSError):
            shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(ConnectionError, BrokenPipeError):
        if data:
            stdin.write(data)
            await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


def _exit_code(text: str) -> int | None:
    """The launcher's `exit` value as the contract has it: a sandbox killed by a signal is
    128 + its number, as a shell (and `runsc run`) says; None if it cannot be read."""
    try:
        code = int(text)
    except ValueError:
        return None
    return code if code >= 0 else 128 - code


def runtime_errors(log_file: Path) -> list[str]:
    """Error-level messages runsc itself logged (never the code's own output)."""
    errors = []
    with contextlib.suppress(OSError):
        for raw in log_file.read_text(errors="replace").replace("}{", "}\n{").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(raw)
                if isinstance(entry, dict) and entry.get("level") in ("error", "fatal"):
                    errors.append(str(entry.get("msg", ""))[:500])
    return errors
