"""What the agent-facing tools share (MCP server, LangChain, OpenAI Agents SDK): their
descriptions, their arguments, and the text a model reads back."""

from __future__ import annotations

from pydantic import BaseModel, Field

from sandgate_client._calls import ExecuteOptions
from sandgate_client.models import ExecuteResult, ScreenResult

__all__ = [
    "CODE",
    "EXECUTE_DESCRIPTION",
    "LANGUAGE",
    "SCREEN_DESCRIPTION",
    "SESSION_NOTE",
    "STAGE",
    "TIMEOUT",
    "ExecuteCodeArgs",
    "describe_execution",
    "describe_screening",
    "options_of",
]

EXECUTE_DESCRIPTION = """\
Run code in a fresh, isolated gVisor sandbox and get back its status, exit code, stdout, \
stderr and any figures it drew.
The sandbox CAN: run Python 3 with its standard library (node or bash, and an image with \
numpy, pandas and matplotlib, where the operator's policy allows them); read the files you \
pass and write under /work and /tmp.
The sandbox CANNOT: reach the network (there is no interface and no DNS) unless the operator's \
policy allowlists hosts, which are then reached through a proxy and nothing else is; see the \
host's files, processes or environment; keep anything between calls (each call starts clean: \
use a session to keep variables and files); or exceed the policy's limits, by default 10 s \
wall clock, 10 s CPU, 256 MB of memory, 64 processes, 1 MiB of output per stream and 64 MB in \
/work and in /tmp. A run that passes a limit is stopped and reported (status timeout, \
memory_limit, pids_limit, output_limit).
Code and output are screened: secrets and personal data may be redacted from the output, and \
code that looks like an attack is refused (status blocked) without running."""

SESSION_NOTE = (
    "A session is one sandbox kept between calls: variables, imports and the files under /work "
    "stay, within the same limits per call, until it is closed or sits idle too long."
)

SCREEN_DESCRIPTION = """\
Screen a text for personal data (emails, phone and card numbers, IBANs...), secrets (API keys, \
tokens, private keys, passwords) and prompt injection or jailbreak attempts, as the operator's \
policy defines them for the stage. Returns the verdict (allow, redact or block), what was found \
where, and the text with findings redacted when the verdict is redact."""

CODE = "The program's source code."
LANGUAGE = "`python` (default), `node` or `bash`, as the policy allows."
TIMEOUT = "Wall-clock limit in seconds, at most the policy's (10 s by default)."
STAGE = "`input` (going to a model), `output` (coming from it) or `code` (about to run)."


class ExecuteCodeArgs(BaseModel):
    """The arguments of the `execute_code` tool."""

    code: str = Field(description=CODE)
    language: str = Field("python", description=LANGUAGE)
    timeout_s: float | None = Field(None, gt=0, description=TIMEOUT)


def options_of(language: str, timeout_s: float | None) -> ExecuteOptions:
    """The execute options a tool call's arguments stand for."""
    options: ExecuteOptions = {"language": language}
    if timeout_s is not None:
        options["timeout_s"] = timeout_s
    return options


def describe_execution(result: ExecuteResult, figures_attached: bool = False) -> str:
    """The run as a model should read it: outcome first, then output, results and files."""
    exit_code = "none" if result.exit_code is None else result.exit_code
    lines = [
        f"status: {result.status}, exit code {exit_code} "
        f"({result.wall_ms} ms, peak memory {result.peak_memory_bytes // 2**20} MiB)"
    ]
    if result.detail:
        lines.append(f"detail: {result.detail}")
    if result.output_withheld:
        lines.append("output withheld by screening")
    for name, text, cut in (
        ("stdout", result.stdout, result.stdout_truncated),
        ("stderr", result.stderr, result.stderr_truncated),
    ):
        if text or cut:
            lines += [f"--- {name}{' (truncated)' if cut else ''} ---", text.rstrip("\n")]
    values = [r.text for r in result.results if r.text is not None and "image/png" not in r.data]
    lines += [f"result: {value}" for value in values]
    if result.figures:
        where = "attached as images" if figures_attached else "not shown here"
        lines.append(f"figures: {len(result.figures)} ({where})")
    lines += [f"file: {path} ({file.size} bytes)" for path, file in result.files.items()]
    lines += [
        f"egress denied: {a.host}:{a.port} ({a.reason})"
        for a in result.egress
        if a.decision != "allow"
    ]
    return "\n".join(lines)


def describe_screening(result: ScreenResult) -> str:
    """A screening verdict as a model should read it."""
    lines = [f"verdict: {result.verdict}"]
    lines += [
        f"found {f.type} ({f.detector}) at {f.start}-{f.end}, score {f.score:.2f}"
        for f in result.findings
    ]
    if result.verdict != "block":
        lines += ["--- text ---", result.text]
    return "\n".join(lines)
