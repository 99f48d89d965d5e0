"""The small launcher a detached runsc sandbox runs under: it starts `runsc run -detach`, becomes
the parent of what that leaves behind, and tells the service when the sandbox exits and how.

Run by the service's own interpreter, standard library only (it starts in milliseconds):

    python3 -I -S subreaper.py STATUS_FD BUNDLE CGROUP_DIRS RUNSC_ARGV...

`runsc run -detach` returns once the sandbox runs, leaving its sandbox and gofer processes
orphaned; as a child subreaper (`PR_SET_CHILD_SUBREAPER`) this process inherits them, reaps them
(and the ptrace stubs each execution leaves as zombies, which would make `runsc delete` hang),
and writes lines to STATUS_FD: `started <pid>` once the sandbox process is known (from
BUNDLE/sandbox.pid), `exit <code>` when it ends (the code's exit status; negative: killed by
that signal), or `failed <code>` if runsc could not start it. It exits once it has no child
left. Kept apart from the service's process so that reaping any orphan never steals an exit
status from asyncio.

If the service's worker dies first (`PR_SET_PDEATHSIG`), it kills the sandbox and removes it
itself: its runsc state, its cgroups (CGROUP_DIRS, `:`-separated) and its bundle, so that a
sandbox started ahead for a worker uvicorn replaces does not outlive it. Only the service's own
reap at start-up covers a launcher that was killed too.

The sandbox's stdin, stdout and stderr are this process's own 0, 1 and 2, handed to runsc and
then dropped here, so the service sees end-of-file exactly when the sandbox closes them.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import time

__all__ = ["kill_children", "main", "remove_orphan"]

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def kill_children() -> None:
    """SIGKILL every child of this process (all that is left of its sandbox)."""
    me = str(os.getpid())
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = stat.read().rsplit(")", 1)[1].split()[1]
                if parent == me:
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, IndexError):
                pass  # gone meanwhile


def _run_reaping(argv: list[str], timeout: float) -> None:
    """Run `argv` to its end (killed after `timeout` s), reaping every other child meanwhile: a
    zombie left unreaped while `runsc delete` waits on the sandbox's processes makes it hang."""
    child = os.posix_spawnp(argv[0], argv, os.environ)
    deadline = time.monotonic() + timeout
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == child:
            return
        if pid == 0:
            if time.monotonic() >= deadline:
                os.kill(child, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.01)


def remove_orphan(command: list[str], bundle: str, cgroups: list[str]) -> None:
    """Remove a dead sandbox whose service is gone: `runsc delete` (given 5 s), the state files
    it leaves, the cgroups (what is still in them killed, retried for up to 10 s while it
    leaves) and the bundle."""
    root = next(arg.split("=", 1)[1] for arg in command if arg.startswith("--root="))
    container = command[-1]
    _run_reaping([command[0], f"--root={root}", "delete", "--force", container], 5.0)
    for name in os.listdir(root):
        if name.startswith(container):
            os.unlink(os.path.join(root, name))
    for _ in range(500):
        left = [d for d in cgroups if os.path.isdir(d)]
        for directory in left:
            for sub, _dirs, _files in sorted(os.walk(directory), key=lambda w: -len(w[0])):
                try:
                    with open(os.path.join(sub, "cgroup.procs")) as procs:
                        for pid in procs.read().split():
                            os.kill(int(pid), signal.SIGKILL)
                    os.rmdir(sub)
                except OSError:
                    pass
        if not left:
            break
        time.sleep(0.02)
    shutil.rmtree(bundle, ignore_errors=True)


def main(argv: list[str]) -> int:
    """Launch, report, reap; the exit code is 0 unless this launcher itself failed."""
    status_fd, bundle, cgroups, command = int(argv[0]), argv[1], argv[2].split(":"), argv[3:]
    os.set_inheritable(status_fd, False)

    def report(line: bytes) -> None:
        try:
            os.write(status_fd, line)
        except OSError:
            pass  # the worker is gone: nobody reads

    worker = os.getppid()
    dying: list[int] = []

    def on_worker_death(signum: int, _frame: object) -> None:
        dying.append(signum)
        kill_children()

    signal.signal(signal.SIGTERM, on_worker_death)
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    if (
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0
        or prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0
        or os.getppid() != worker  # the worker died before the death signal was set
    ):
        report(b"failed -1\n")
        return 1
    runsc = os.posix_spawnp(command[0], command, os.environ)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    exits: dict[int, int] = {}
    sandbox: int | None = None
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        exits[pid] = os.waitstatus_to_exitcode(status)
        if dying:
            kill_children()  # orphans of the sandbox reparented to this process meanwhile
        if pid == runsc:
            if exits[pid] != 0:
                report(b"failed %d\n" % exits[pid])
                continue
            with open(os.path.join(bundle, "sandbox.pid")) as file:
                sandbox = int(file.read().strip())
            report(b"started %d\n" % sandbox)
        if sandbox is not None and sandbox in exits:
            report(b"exit %d\n" % exits.pop(sandbox))
            sandbox = -1
    if dying:
        remove_orphan(command, bundle, cgroups)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
