"""Sandgate's in-sandbox runner for Python: protocol `sandgate-runner/1` (see PROTOCOL.md).

Runs as the sandbox's first process, on the image's own python3 (3.11, standard library only,
nothing of the service's packages):

    python3 /sandgate/runner.py [--preimport MODULE,MODULE...]

It imports the modules asked for, writes a `ready` record on stdout, and waits for one frame on
stdin. The frame's code then runs as `__main__` in /work, as `python3 /sandgate/main.py` would
run it: same exit codes, `SystemExit`, tracebacks (without this file's frames) and exit 1 for an
uncaught exception, atexit handlers, non-daemon threads; whatever follows the frame on stdin is
the code's stdin. Then it exits at once: no module teardown, which costs 13 ms under gVisor.
"""

from __future__ import annotations

import sys

STARTUP_MODULES = frozenset(sys.modules)  # what a plain `python3 main.py` has loaded too

# After the snapshot above, on purpose; all of them now, before `ready`, not on the request's
# path (linecache alone pulls in tokenize and friends).
import _posixsubprocess  # noqa: E402
import _thread  # noqa: E402
import atexit  # noqa: E402
import base64  # noqa: E402
import errno  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import linecache  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402

TYPE_CHECKING = False  # typing costs milliseconds to import under gVisor; mypy reads it anyway
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["main"]

PROTOCOL = 1
MAGIC = b"SGR/1"
RS = b"\x1e"
FEATURES = ["once", "limit-report", "binary-files"]
MAX_FRAME = 256 << 20
MAIN_FILE = "/sandgate/main.py"
WORK_DIR = "/work"
BAD_FRAME = 125  # the runner, not the code, failed: the host reports a sandbox error


class Channel:
    """Records to the host, on a copy of stdout the code's own redirections do not touch."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.token = "-"

    def send(self, kind: str, **fields: Any) -> None:
        """One record, in one write (atomic on a pipe up to 4096 bytes)."""
        body = json.dumps({"type": kind, **fields}, separators=(",", ":"))
        line = RS + MAGIC + b" " + self.token.encode() + b" " + body.encode() + b"\n"
        try:
            os.write(self.fd, line)
        except OSError:
            pass  # the host is gone; nothing left to tell


def read_frame(fd: int) -> dict[str, Any]:
    """One frame from `fd`, not a byte more: `SGR/1 <length>\\n` then that many bytes of JSON."""
    header = b""
    while not header.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte or len(header) > 32:
            raise ValueError("no frame header on stdin")
        header += byte
    magic, _, size = header.strip().partition(b" ")
    if magic != MAGIC or not size.isdigit() or int(size) > MAX_FRAME:
        raise ValueError(f"not a {MAGIC.decode()} frame header: {header[:32]!r}")
    chunks, left = [], int(size)
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise ValueError("stdin ended inside the frame")
        chunks.append(chunk)
        left -= len(chunk)
    frame = json.loads(b"".join(chunks))
    if not isinstance(frame, dict) or frame.get("type") != "execute":
        raise ValueError("the frame is not an `execute` frame")
    return frame


def write_files(files: dict[str, dict[str, str]]) -> None:
    """Write the frame's files under /work (text as UTF-8, or base64 bytes)."""
    for name, content in files.items():
        parts = name.split("/")
        if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"file path {name!r} is not relative to /work")
        if len(parts) > 1:
            os.makedirs(os.path.join(WORK_DIR, *parts[:-1]), exist_ok=True)
        if "base64" in content:
            data = base64.b64decode(content["base64"], validate=True)
        else:
            data = content["text"].encode("utf-8")
        with open(os.path.join(WORK_DIR, name), "wb") as out:
            out.write(data)


def unshadow(files: dict[str, Any]) -> None:
    """Forget modules loaded before the code (by this runner or pre-imported) that a file of
    the code would shadow, as it would in a fresh interpreter: /work precedes the stdlib."""
    tops = {name.split("/")[0].removesuffix(".py") for name in files}
    for name in list(sys.modules):
        top = name.split(".")[0]
        if top in tops and name not in STARTUP_MODULES and top not in sys.builtin_module_names:
            del sys.modules[name]
    importlib.invalidate_caches()


def report_refused_forks(channel: Channel) -> None:
    """Wrap every way Python makes a process or thread so that one refused for the process
    limit (EAGAIN) is reported to the host, once per process, before the error propagates."""
    reported = [0]

    def refused(call: str) -> None:
        if reported[0] != os.getpid():
            reported[0] = os.getpid()
            channel.send("limit", limit="processes", call=call)

    def wrap(module: Any, name: str, thread: bool = False) -> Callable[..., Any] | None:
        real = getattr(module, name, None)
        if real is None:
            return None

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return real(*args, **kwargs)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    refused(name)
                raise
            except RuntimeError as exc:
                if thread and "can't start new thread" in str(exc):
                    refused(name)
                raise

        call.__name__, call.__qualname__, call.__doc__ = real.__name__, real.__name__, real.__doc__
        setattr(module, name, call)
        return call

    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp"):
        wrap(os, name)
    fork_exec = wrap(_posixsubprocess, "fork_exec")
    start_thread = wrap(_thread, "start_new_thread", thread=True)
    if "subprocess" in sys.modules:  # bound at its import: pre-imported modules need it too
        setattr(sys.modules["subprocess"], "_fork_exec", fork_exec)  # noqa: B010
    if "threading" in sys.modules:
        setattr(sys.modules["threading"], "_start_new_thread", start_thread)  # noqa: B010


def set_limits(limits: dict[str, int]) -> None:
    """Lower the process limit to the frame's (never raise it: the sandbox's is the ceiling)."""
    wanted = limits.get("processes")
    if wanted:
        soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NPROC, (ceiling, ceiling))


def exit_code(exc: SystemExit) -> int:
    """What the interpreter exits with for `SystemExit(code)`."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def run(source: str) -> int:
    """Run `source` as `__main__`; return the exit code the interpreter would exit with."""
    # This module stays loaded under another name once the code's replaces it as `__main__`.
    sys.modules["sandgate_runner"] = sys.modules["__main__"]
    main = type(sys)("__main__")
    main.__dict__.update({"__file__": MAIN_FILE, "__cached__": None, "__builtins__": __builtins__})
    sys.modules["__main__"] = main
    sys.argv[:] = [MAIN_FILE]
    sys.path[0] = os.path.dirname(MAIN_FILE)
    linecache.cache[MAIN_FILE] = (len(source), None, source.splitlines(True), MAIN_FILE)
    try:
        exec(compile(source, MAIN_FILE, "exec", dont_inherit=True), main.__dict__)
    except SystemExit as exc:
        return exit_code(exc)
    except BaseException as exc:  # noqa: BLE001 - the code's own failure, shown as python would
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        exc = exc.with_traceback(tb)
        if sys.excepthook is sys.__excepthook__:
            import traceback  # the interpreter's own printer reads the source from disk, but

            # /sandgate/main.py exists only in linecache; this one prints the same from there
            traceback.print_exception(exc)
        else:
            sys.excepthook(type(exc), exc, tb)
        return 130 if isinstance(exc, KeyboardInterrupt) else 1
    return 0


def finish(rc: int) -> int:
    """What the interpreter does on its way out, minus module teardown: wait for non-daemon
    threads, run atexit handlers, flush, drop `__main__`'s names (their finalizers run)."""
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()
        except KeyboardInterrupt:
            pass
    atexit._run_exitfuncs()
    for attempt in range(2):
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except Exception:  # noqa: BLE001 - python exits 120 when stdout cannot be flushed
                rc = 120 if rc == 0 else rc
        if attempt == 0:
            sys.modules["__main__"].__dict__.clear()
    return rc


def main(argv: list[str]) -> None:
    """Boot, signal ready, take one frame, run it, exit."""
    channel = Channel(os.dup(1))
    preimport = argv[argv.index("--preimport") + 1].split(",") if "--preimport" in argv else []
    for module in filter(None, preimport):
        __import__(module)
    channel.send("ready", protocol=PROTOCOL, runner="python", features=FEATURES)
    try:
        frame = read_frame(0)
        channel.token = str(frame["token"])
        os.chdir(WORK_DIR)
        files = frame.get("files", {})
        write_files(files)
        unshadow(files)
        set_limits(frame.get("limits", {}))
    except (ValueError, KeyError, TypeError, OSError) as exc:
        channel.send("error", detail=f"{type(exc).__name__}: {exc}"[:1000])
        os._exit(BAD_FRAME)
    report_refused_forks(channel)
    rc = finish(run(str(frame.get("code", ""))))
    channel.send("end", exit_code=rc)
    os._exit(rc)


if __name__ == "__main__":
    main(sys.argv[1:])
