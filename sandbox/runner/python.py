"""Sandgate's in-sandbox runner for Python: protocol `sandgate-runner/1` (see PROTOCOL.md).

Runs as the sandbox's first process, on the image's own python3 (3.11, standard library only,
nothing of the service's packages):

    python3 /sandgate/runner.py [--preimport MODULE,MODULE...]

It imports the modules asked for, writes a `ready` record on stdout, and waits for a frame on
stdin. In mode `once` the frame's code then runs as `__main__` in /work, as `python3
/sandgate/main.py` would run it: same exit codes, `SystemExit`, tracebacks (without this file's
frames) and exit 1 for an uncaught exception, atexit handlers, non-daemon threads; whatever
follows the frame on stdin is the code's stdin. Then it exits at once: no module teardown, which
costs 13 ms under gVisor. In mode `session` it runs frame after frame in one `__main__`, as a
notebook kernel does, until stdin ends.

Rich results (`results` in the frame): the value of a final expression, `display()` calls and
matplotlib figures (shown, or left open at the end) are sent as `result` records; matplotlib is
never imported unless the code does. `outputs` globs send files of /work as `file` records.
"""

from __future__ import annotations

import sys

STARTUP_MODULES = frozenset(sys.modules)  # what a plain `python3 main.py` has loaded too

# After the snapshot above, on purpose; all of them now, before `ready`, not on the request's
# path (linecache alone pulls in tokenize and friends).
import _posixsubprocess  # noqa: E402
import _thread  # noqa: E402
import ast  # noqa: E402
import atexit  # noqa: E402
import base64  # noqa: E402
import builtins  # noqa: E402
import errno  # noqa: E402
import glob  # noqa: E402
import importlib  # noqa: E402
import importlib.machinery  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import linecache  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import stat  # noqa: E402

TYPE_CHECKING = False  # typing costs milliseconds to import under gVisor; mypy reads it anyway
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType, ModuleType
    from typing import Any, NoReturn

__all__ = ["main"]

PROTOCOL = 1
MAGIC = b"SGR/1"
RS = b"\x1e"
FEATURES = ["once", "limit-report", "binary-files", "results", "outputs", "session", "interrupt"]
MAX_FRAME = 256 << 20
MAX_WRITE = 4096  # one write(2) of at most PIPE_BUF bytes is never torn apart on a pipe
MAX_OUTPUT_FILES_BYTES = 64 << 20  # what `outputs` sends at most, all files together
MAIN_FILE = "/sandgate/main.py"
WORK_DIR = "/work"
BAD_FRAME = 125  # the runner, not the code, failed: the host reports a sandbox error
FRAME_TYPES = ("execute", "write_file", "read_file")


class Channel:
    """Records to the host, on a copy of a descriptor the code's own redirections do not
    touch. A record longer than one atomic write goes in `chunk` records the host rejoins."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.token = "-"
        self._chunks = 0

    def _write(self, body: str) -> None:
        try:
            line = RS + MAGIC + b" " + self.token.encode() + b" " + body.encode() + b"\n"
            os.write(self.fd, line)
        except OSError:
            pass  # the host is gone; nothing left to tell

    def send(self, record_type: str, /, **fields: Any) -> None:
        """One record, in one write, or in `chunk` records of one write each."""
        body = json.dumps({"type": record_type, **fields}, separators=(",", ":"))
        if len(body) + len(self.token) + 16 <= MAX_WRITE:
            self._write(body)
            return
        self._chunks += 1
        start, room = 0, MAX_WRITE - len(self.token) - 80
        while start < len(body):
            size = room
            while True:  # JSON escapes `"` and `\` of the piece: shrink until it fits
                piece = json.dumps(body[start : start + size])
                if len(piece) <= room or size < 64:
                    break
                size //= 2
            last = "true" if start + size >= len(body) else "false"
            self._write(f'{{"type":"chunk","id":{self._chunks},"last":{last},"data":{piece}}}')
            start += size


def read_frame(fd: int) -> dict[str, Any] | None:
    """One frame from `fd`, not a byte more: `SGR/1 <length>\\n` then that many bytes of JSON;
    None when `fd` ends before a frame starts (a session's host is done)."""
    header = b""
    while not header.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte and not header:
            return None
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
    if not isinstance(frame, dict) or frame.get("type") not in FRAME_TYPES:
        raise ValueError("the frame's type is none of " + ", ".join(FRAME_TYPES))
    return frame


def work_path(name: str) -> str:
    """`/work/<name>` for a relative path without `..`; ValueError for any other."""
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"file path {name!r} is not relative to /work")
    return os.path.join(WORK_DIR, *parts)


def write_file(name: str, data: bytes) -> None:
    """Write `data` to /work/<name>, its parent directories made."""
    path = work_path(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(data)


def write_files(files: dict[str, dict[str, str]]) -> None:
    """Write the frame's files under /work (text as UTF-8, or base64 bytes)."""
    for name, content in files.items():
        if "base64" in content:
            write_file(name, base64.b64decode(content["base64"], validate=True))
        else:
            write_file(name, content["text"].encode("utf-8"))


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


# -- rich results -------------------------------------------------------------------------------


class Rich:
    """Sends the code's rich values as `result` records: `display()`, the final expression,
    and matplotlib's figures (on `plt.show()`, and those left open at the end)."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        builtins.display = self.display  # type: ignore[attr-defined]
        sys.meta_path.insert(0, self)

    def display(self, *objects: Any) -> None:
        """Show each object as a `display` result, in order."""
        for obj in objects:
            self.send("display", obj)

    def send(self, kind: str, obj: Any) -> None:
        """One `result` record of `obj`'s MIME forms."""
        self.channel.send("result", kind=kind, data=self.forms(obj))

    def forms(self, obj: Any) -> dict[str, Any]:
        """`text/plain` always; `text/html`, `application/json`, `image/png` as the object
        offers them (`_repr_html_`...), a matplotlib figure as its PNG."""
        data = {"text/plain": _safely(repr, obj) or f"<{type(obj).__name__} object>"}
        if not isinstance(obj, type):
            for attr, mime in (("_repr_html_", "text/html"), ("_repr_json_", "application/json")):
                method = getattr(obj, attr, None)
                value = _safely(method) if callable(method) else None
                if value is not None:
                    data[mime] = value
            method = getattr(obj, "_repr_png_", None)
            png = _safely(method) if callable(method) else None
            if isinstance(png, bytes):
                data["image/png"] = base64.b64encode(png).decode("ascii")
        figure = sys.modules.get("matplotlib.figure")
        if figure is not None and isinstance(obj, figure.Figure):
            data["image/png"] = _png(obj)
        return data

    def figures(self) -> None:
        """Send every open matplotlib figure as a `figure` result, then close them all."""
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is None:
            return
        for number in plt.get_fignums():
            figure = plt.figure(number)
            self.channel.send(
                "result",
                kind="figure",
                data={"image/png": _png(figure), "text/plain": _safely(repr, figure) or ""},
            )
        plt.close("all")

    # A meta path finder that never finds anything itself: it has pyplot's `show` send the
    # figures instead (Agg cannot show them), once the code imports pyplot.
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        """pyplot's own spec, whose loader then patches `show`; None for everything else."""
        if name != "matplotlib.pyplot":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            load(module)
            setattr(module, "show", lambda *args, **kwargs: self.figures())  # noqa: B010

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def _safely(function: Callable[..., Any], *args: Any) -> Any:
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - a broken repr of the code's object is no reason to fail
        return None


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def send_outputs(channel: Channel, patterns: list[str]) -> None:
    """One `file` record per regular file of /work matching a pattern, in order, until
    MAX_OUTPUT_FILES_BYTES; a file that would pass it is named with `skipped`."""
    sent: set[str] = set()
    total = 0
    for pattern in patterns:
        for name in sorted(glob.glob(pattern, root_dir=WORK_DIR, recursive=True)):
            try:
                path = work_path(os.path.normpath(name))
                info = os.lstat(path)
            except (ValueError, OSError):
                continue
            if name in sent or not stat.S_ISREG(info.st_mode):
                continue
            sent.add(name)
            if total + info.st_size > MAX_OUTPUT_FILES_BYTES:
                channel.send("file", path=name, size=info.st_size, skipped="over the cap")
                continue
            with open(path, "rb") as file:
                data = file.read(MAX_OUTPUT_FILES_BYTES - total + 1)
            total += len(data)
            channel.send("file", path=name, content_base64=base64.b64encode(data).decode())


# -- running code -------------------------------------------------------------------------------


def exit_code(exc: SystemExit) -> int:
    """What the interpreter exits with for `SystemExit(code)`."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code & 0xFF
    print(exc.code, file=sys.stderr)
    return 1


def main_module() -> ModuleType:
    """A fresh `__main__` for the code (this module stays loaded under another name)."""
    sys.modules["sandgate_runner"] = sys.modules["__main__"]
    main = type(sys)("__main__")
    main.__dict__.update({"__file__": MAIN_FILE, "__cached__": None, "__builtins__": __builtins__})
    sys.modules["__main__"] = main
    sys.argv[:] = [MAIN_FILE]
    sys.path[0] = os.path.dirname(MAIN_FILE)
    return main


def compiled(source: str, split: bool) -> tuple[CodeType, CodeType | None]:
    """The code, and with `split` its final expression compiled apart (to be evaluated)."""
    linecache.cache[MAIN_FILE] = (len(source), None, source.splitlines(True), MAIN_FILE)
    if not split:
        return compile(source, MAIN_FILE, "exec", dont_inherit=True), None
    tree = ast.parse(source, MAIN_FILE)
    last = None
    final = tree.body[-1] if tree.body else None
    if isinstance(final, ast.Expr):
        tree.body.pop()
        last = compile(ast.Expression(final.value), MAIN_FILE, "eval", dont_inherit=True)
    return compile(tree, MAIN_FILE, "exec", dont_inherit=True), last


def run(source: str, main: ModuleType, rich: Rich | None) -> tuple[int, BaseException | None]:
    """Run `source` in `main`; the exit code the interpreter would exit with, and the
    exception that ended it (None for a normal end or `SystemExit`)."""
    try:
        body, last = compiled(source, rich is not None)
        exec(body, main.__dict__)
        if last is not None:
            value = eval(last, main.__dict__)
            if value is not None and rich is not None:
                rich.send("execute_result", value)
    except SystemExit as exc:
        return exit_code(exc), None
    except BaseException as exc:  # noqa: BLE001 - the code's own failure, shown as python would
        tb = exc.__traceback__  # from the code's first frame on (none: a SyntaxError)
        while tb is not None and tb.tb_frame.f_code.co_filename != MAIN_FILE:
            tb = tb.tb_next
        exc = exc.with_traceback(tb)
        if sys.excepthook is sys.__excepthook__:
            import traceback  # the interpreter's own printer reads the source from disk, but

            # /sandgate/main.py exists only in linecache; this one prints the same from there
            traceback.print_exception(exc)
        else:
            sys.excepthook(type(exc), exc, tb)
        return (130 if isinstance(exc, KeyboardInterrupt) else 1), exc
    return 0, None


def flush(rc: int) -> int:
    """Flush the code's streams; 120 (as python exits) when stdout cannot be flushed."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: BLE001 - python exits 120 when stdout cannot be flushed
            rc = 120 if rc == 0 else rc
    return rc


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
    rc = flush(rc)
    sys.modules["__main__"].__dict__.clear()
    return flush(rc)


def once(frame: dict[str, Any], channel: Channel) -> None:
    """Mode `once`: run the frame's code as `__main__`, report, exit with its status."""
    rich = Rich(channel) if frame.get("results") else None
    rc, _ = run(str(frame.get("code", "")), main_module(), rich)
    if rich is not None:
        rich.figures()
    rc = finish(rc)
    send_outputs(channel, list(frame.get("outputs", ())))
    channel.send("end", exit_code=rc)
    os._exit(rc)


# -- sessions -----------------------------------------------------------------------------------


class Session:
    """Mode `session`: one `__main__` for every frame; each answered by records on stdout and
    ended by an `end` record on stdout and on stderr. SIGINT interrupts running code only
    (between frames it is ignored)."""

    def __init__(self, channel: Channel, errors: Channel) -> None:
        self.channel = channel
        self.errors = errors
        self.frames = os.dup(0)  # fd 0 becomes each execution's own stdin
        self.main = main_module()
        self.rich: Rich | None = None
        self.pid = os.getpid()
        self.count = 0
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def serve(self, frame: dict[str, Any] | None) -> None:
        """Answer frames until stdin ends."""
        while frame is not None:
            self.channel.token = self.errors.token = str(frame["token"])
            fields = getattr(self, frame["type"])(frame)
            self.channel.send("end", **fields)
            self.errors.send("end")
            try:
                frame = read_frame(self.frames)
            except (ValueError, KeyError, TypeError, OSError) as exc:
                fail(self.channel, exc)
        os._exit(0)

    def execute(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Run the frame's code in the session's `__main__`."""
        if frame.get("results") and self.rich is None:
            self.rich = Rich(self.channel)
        stdin(str(frame.get("stdin") or ""))
        self.count += 1
        signal.signal(signal.SIGINT, signal.default_int_handler)  # KeyboardInterrupt, no frame
        try:
            rc, exc = run(str(frame.get("code", "")), self.main, self.rich)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        if os.getpid() != self.pid:  # a child the code forked ends here, as in `once`
            os._exit(flush(rc))
        if self.rich is not None:
            self.rich.figures()
        rc = flush(rc)
        send_outputs(self.channel, list(frame.get("outputs", ())))
        fields: dict[str, Any] = {"exit_code": rc, "execution_count": self.count}
        if exc is not None:
            fields["exception"] = {"type": type(exc).__name__, "message": str(exc)[:1000]}
        return fields

    def write_file(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Write the frame's bytes to /work/<path>."""
        try:
            write_file(str(frame["path"]), base64.b64decode(frame["base64"], validate=True))
        except (ValueError, OSError) as exc:
            return {"error": f"{type(exc).__name__}: {exc}"[:500]}
        return {}

    def read_file(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send /work/<path> as a `file` record, unless it is missing or too large."""
        limit = int(frame["max_bytes"])
        try:
            path = work_path(str(frame["path"]))
            if not os.path.realpath(path).startswith(WORK_DIR + "/"):
                return {"error": "missing"}  # a link out of /work: only /work is served
            with open(path, "rb") as file:
                if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                    return {"error": "missing"}
                data = file.read(limit + 1)
        except (ValueError, OSError):
            return {"error": "missing"}
        if len(data) > limit:
            return {"error": "too_large"}
        content = base64.b64encode(data).decode()
        self.channel.send("file", path=frame["path"], content_base64=content)
        return {}


def stdin(text: str) -> None:
    """Make `text` the code's stdin, at fd 0 too (so its child processes read it)."""
    fd = os.memfd_create("stdin")
    data = text.encode("utf-8")
    while data:
        data = data[os.write(fd, data) :]
    os.lseek(fd, 0, os.SEEK_SET)
    os.dup2(fd, 0)
    os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as sys.stdin


def fail(channel: Channel, exc: BaseException) -> NoReturn:
    """The runner cannot go on: say why, exit 125."""
    channel.send("error", detail=f"{type(exc).__name__}: {exc}"[:1000])
    os._exit(BAD_FRAME)


def main(argv: list[str]) -> None:
    """Boot, signal ready, take a frame, run it (and in a session, the next ones)."""
    channel = Channel(os.dup(1))
    preimport = argv[argv.index("--preimport") + 1].split(",") if "--preimport" in argv else []
    for module in filter(None, preimport):
        __import__(module)
    channel.send("ready", protocol=PROTOCOL, runner="python", features=FEATURES)
    try:
        frame = read_frame(0)
        if frame is None:
            raise ValueError("stdin ended before a frame")
        channel.token = str(frame["token"])
        os.chdir(WORK_DIR)
        files = frame.get("files", {})
        write_files(files)
        unshadow(files)
        set_limits(frame.get("limits", {}))
    except (ValueError, KeyError, TypeError, OSError) as exc:
        fail(channel, exc)
    report_refused_forks(channel)
    if frame.get("mode") == "session":
        Session(channel, Channel(os.dup(2))).serve(frame)
    once(frame, channel)


if __name__ == "__main__":
    main(sys.argv[1:])
