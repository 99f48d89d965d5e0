"""`sandgate-client`: run code, screen text and manage sessions from a shell.

`run` streams the program's stdout and stderr to the terminal's and exits with the program's
exit code; when there is none, 124 if it timed out, else 125. A service or client error (bad
key, service down, refused policy) prints its message and exits 125. `screen` prints the text
(redacted when the verdict is `redact`) and exits 1 when the verdict is `block`. The key comes
from `SANDGATE_API_KEY` only (never a flag: flags show in `ps`).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, ParamSpec, TextIO, TypeVar, cast

import click

from sandgate_client._calls import ExecuteOptions, SessionOptions
from sandgate_client._spinner import Spinner
from sandgate_client.client import Sandgate, Session
from sandgate_client.errors import SandgateError
from sandgate_client.events import Callbacks, Event, consume
from sandgate_client.models import ExecuteResult, SessionInfo

__all__ = ["main"]

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R", bound=ExecuteResult)
EXIT_TIMEOUT = 124
EXIT_FAILED = 125


def _service_errors(command: Callable[P, T]) -> Callable[P, T]:
    """A service or client error ends the command with its message and exit status 125."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return command(*args, **kwargs)
        except SandgateError as exc:
            click.echo(f"sandgate-client: {exc}", err=True)
            sys.exit(EXIT_FAILED)

    return wrapper


def _client(ctx: click.Context) -> Sandgate:
    """The client, made on first use (so that `--help` needs no key)."""
    url: str | None = ctx.find_root().params["url"]
    return ctx.with_resource(Sandgate(url))


def _options(
    language: str,
    timeout: float | None,
    stdin: IO[str] | None,
    files: tuple[str, ...],
    outputs: tuple[str, ...],
    image: str | None,
    policy: str | None,
) -> ExecuteOptions:
    options: ExecuteOptions = {"language": language}
    if timeout is not None:
        options["timeout_s"] = timeout
    if stdin is not None:
        options["stdin"] = stdin.read()
    if files:
        options["files"] = dict(_local_file(spec) for spec in files)
    if outputs:
        options["outputs"] = list(outputs)
    if image:
        options["image"] = image
    if policy:
        options["policy"] = policy
    return options


def _local_file(spec: str) -> tuple[str, str | bytes]:
    name, sep, local = spec.partition("=")
    if not sep or not name or not local:
        raise click.BadParameter(f"{spec!r} is not NAME=LOCAL_PATH", param_hint="--file")
    data = Path(local).read_bytes()
    try:
        return name, data.decode("utf-8")
    except UnicodeDecodeError:
        return name, data


def _run_options(command: Callable[P, T]) -> Callable[P, T]:
    """The options every way of running code takes."""
    for option in reversed(
        [
            click.option("--language", default="python", show_default=True),
            click.option("--timeout", type=float, help="Wall-clock limit, seconds."),
            click.option("--stdin", "stdin", type=click.File("r"), help="Feed this file."),
            click.option(
                "--file",
                "files",
                multiple=True,
                metavar="NAME=PATH",
                help="Put a local file into /work (repeatable).",
            ),
            click.option(
                "--output",
                "outputs",
                multiple=True,
                metavar="GLOB",
                help="Bring back files of /work matching GLOB (repeatable).",
            ),
            click.option(
                "--out-dir",
                type=click.Path(file_okay=False, path_type=Path),
                help="Save the --output files and the figures here.",
            ),
            click.option("--image", help="Sandbox image (python, python-data), if allowed."),
            click.option("--policy", help="A stricter policy to run under."),
            click.option("--json", "as_json", is_flag=True, help="Print the whole answer."),
            click.argument("source", type=click.File("r")),
        ]
    ):
        command = option(command)
    return command


def _stream_to_terminal(events: Iterator[Event[R]]) -> R:
    with Spinner(sys.stderr, "running in the sandbox…") as spinner:

        def writer(out: TextIO) -> Callable[[str], None]:
            def write(text: str) -> None:
                spinner.output()
                out.write(text)
                out.flush()

            return write

        return consume(events, Callbacks(writer(sys.stdout), writer(sys.stderr)))


def _finish(result: ExecuteResult, out_dir: Path | None, as_json: bool) -> None:
    """Report what the terminal did not show, save what came back, exit as the program did."""
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    elif result.status not in ("ok", "error"):
        click.echo(
            f"sandgate-client: {result.status}: {result.detail or ''}".rstrip(": "), err=True
        )
    if out_dir is not None:
        for path in [*result.save_files(out_dir), *result.save_figures(out_dir)]:
            click.echo(f"sandgate-client: saved {path}", err=True)
    elif result.files or result.figures:
        kept = f"{len(result.files)} file(s), {len(result.figures)} figure(s)"
        click.echo(f"sandgate-client: {kept} came back: --out-dir DIR saves them", err=True)
    if result.exit_code is not None:
        sys.exit(result.exit_code)
    sys.exit(EXIT_TIMEOUT if result.status == "timeout" else EXIT_FAILED)


@click.group()
@click.option(
    "--url", envvar="SANDGATE_URL", help="The service [SANDGATE_URL, else 127.0.0.1:8000]."
)
def main(url: str | None) -> None:
    """Run code in Sandgate's sandboxes and screen text (key: SANDGATE_API_KEY)."""


@main.command()
@_run_options
@click.pass_context
@_service_errors
def run(
    ctx: click.Context, /, source: IO[str], as_json: bool, out_dir: Path | None, **opts: Any
) -> None:
    """Run FILE (or - for standard input) in a fresh sandbox."""
    code, options = source.read(), _options(**opts)
    client = _client(ctx)
    result = (
        client.execute(code, **options)
        if as_json
        else _stream_to_terminal(client.stream(code, **options))
    )
    _finish(result, out_dir, as_json)


@main.command()
@click.option(
    "--stage", type=click.Choice(["input", "output", "code"]), default="input", show_default=True
)
@click.option("--policy", help="A stricter policy to screen under.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer.")
@click.argument("source", type=click.File("r"))
@click.pass_context
@_service_errors
def screen(
    ctx: click.Context, source: IO[str], stage: str, policy: str | None, as_json: bool
) -> None:
    """Screen the text of FILE (or -): print it, redacted if need be; exit 1 if blocked."""
    result = _client(ctx).screen(source.read(), stage, policy=policy)
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    for f in result.findings:
        click.echo(f"{result.verdict}: {f.type} ({f.detector}) at {f.start}-{f.end}", err=True)
    if result.verdict == "block":
        sys.exit(1)
    if not as_json:
        click.echo(result.text, nl=False)


@main.group()
def session() -> None:
    """Sessions: one sandbox kept between runs."""


def _echo_session(info: SessionInfo) -> None:
    expires = info.expires_at.isoformat() if info.expires_at else "-"
    click.echo(f"{info.session_id}\texpires {expires}")


@session.command("create")
@click.option("--language")
@click.option("--image")
@click.option("--policy")
@click.option("--idle-timeout", "idle_timeout_s", type=float, help="Seconds idle before it ends.")
@click.option("--ttl", "ttl_s", type=float, help="Seconds it may live at most.")
@click.pass_context
@_service_errors
def session_create(ctx: click.Context, /, **opts: Any) -> None:
    """Start a session and print its id."""
    options = cast(SessionOptions, {k: v for k, v in opts.items() if v is not None})
    click.echo(_client(ctx).sessions.create(**options).id)


@session.command("list")
@click.pass_context
@_service_errors
def session_list(ctx: click.Context) -> None:
    """List the sessions of the key's tenant."""
    for info in _client(ctx).sessions.list():
        _echo_session(info)


@session.command("show")
@click.argument("session_id")
@click.pass_context
@_service_errors
def session_show(ctx: click.Context, session_id: str) -> None:
    """Print a session's description as JSON."""
    click.echo(_client(ctx).sessions.get(session_id).info.model_dump_json(indent=2))


@session.command("run")
@click.argument("session_id")
@_run_options
@click.pass_context
@_service_errors
def session_run(
    ctx: click.Context,
    /,
    session_id: str,
    source: IO[str],
    as_json: bool,
    out_dir: Path,
    **opts: Any,
) -> None:
    """Run FILE (or -) in the session."""
    code, options = source.read(), _options(**opts)
    found = Session(_client(ctx), SessionInfo(session_id=session_id))
    result = (
        found.run(code, **options)
        if as_json
        else _stream_to_terminal(found.stream(code, **options))
    )
    _finish(result, out_dir, as_json)


@session.command("upload")
@click.argument("session_id")
@click.argument("local", type=click.File("rb"))
@click.argument("remote", required=False)
@click.pass_context
@_service_errors
def session_upload(
    ctx: click.Context, session_id: str, local: IO[bytes], remote: str | None
) -> None:
    """Copy LOCAL (or -) into the session's /work, as REMOTE (default: its name)."""
    name = remote or Path(local.name).name
    files = Session(_client(ctx), SessionInfo(session_id=session_id)).files
    info = files.write(name, local.read())
    click.echo(f"{info.path}\t{info.size}\t{info.sha256}")


@session.command("download")
@click.argument("session_id")
@click.argument("remote")
@click.argument("local", type=click.File("wb"), default="-")
@click.pass_context
@_service_errors
def session_download(ctx: click.Context, session_id: str, remote: str, local: IO[bytes]) -> None:
    """Copy REMOTE from the session's /work to LOCAL (default: standard output)."""
    files = Session(_client(ctx), SessionInfo(session_id=session_id)).files
    local.write(files.read(remote))


@session.command("close")
@click.argument("session_id")
@click.pass_context
@_service_errors
def session_close(ctx: click.Context, session_id: str) -> None:
    """Delete the session."""
    Session(_client(ctx), SessionInfo(session_id=session_id)).close()
