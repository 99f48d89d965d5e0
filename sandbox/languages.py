"""Languages and images the engine can run: which images run a language, which file the code
goes in, which command runs it; and what each image can do besides (egress).

Each image is built from its recipe under `images/<name>/` (see `sandbox.image`); a test checks
that this table and the recipes agree. A language's first image is its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = [
    "IMAGES",
    "LANGUAGES",
    "Image",
    "Language",
    "UnknownImage",
    "UnknownLanguage",
    "image",
    "language",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Image:
    """What one sandbox image offers.

    `egress`: the image has the python3 the in-sandbox egress forwarder runs on, so an
    execution on it can be given an allowlisted network; without it, it cannot.
    """

    name: str
    description: str
    egress: bool


@dataclass(frozen=True)
class Language:
    """How to run code of one language; `images` can run it, the first is the default.

    `command` may name the sandbox's memory cap as `{memory_mb}`: node's V8 sizes its heap from
    the memory it sees (half of it, at most 2 GB) and aborts when the heap is full (exit 134);
    a heap as large as the cap leaves the cap, enforced by the cgroup, to end a memory bomb
    cleanly as `memory_limit`.

    `env` is added to the sandbox's fixed environment: node finds modules in /work and npm's
    /work/node_modules by bare name through NODE_PATH (a relative `require('./x')` resolves
    against the program's own file, /sandgate/main.js, as python's `import x` finds /work/x.py
    through PYTHONPATH).

    `prelude` names a file of `sandbox/prelude/` that the launcher puts beside the code, as
    /sandgate/prelude (node loads it first: blocking stdout and stderr).

    `runtime_tasks` are the interpreter's own threads, allowed on top of the code's process
    limit (`RLIMIT_NPROC` counts threads): node starts 7 (V8's platform workers among them) and
    11 once libuv's thread pool runs; under a limit below that it hung until the wall clock.

    `runner` names the language's in-sandbox runner under `sandbox/runner/` (PROTOCOL.md): its
    code then arrives in a frame, and its sandboxes can be started ahead (the warm pool) unless
    `command` needs the memory cap, which is only known per request. Without one, the code is
    the file `filename` that `command` runs, in a sandbox started for it.
    """

    name: str
    images: tuple[str, ...]
    filename: str
    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    prelude: str | None = None
    runtime_tasks: int = 0
    runner: str | None = None

    def task_limit(self, max_processes: int) -> int:
        """The `RLIMIT_NPROC` of a sandbox whose code may have `max_processes` at once."""
        return max_processes + self.runtime_tasks

    def argv(self, script: str, memory_mb: int) -> list[str]:
        """The command line that runs `script` (a path inside the sandbox)."""
        return [part.format(memory_mb=memory_mb) for part in self.command] + [script]

    @property
    def image(self) -> str:
        """The image a request that names none runs on."""
        return self.images[0]

    def image_for(self, name: str | None) -> str:
        """`name` (default: this language's image), checked to be able to run this language."""
        chosen = name or self.image
        if chosen not in self.images:
            raise UnknownImage(
                f"image {chosen!r} cannot run {self.name}; images for {self.name}: "
                f"{', '.join(self.images)}"
            )
        return chosen


IMAGES: dict[str, Image] = {
    "python": Image("python", "Python 3.11 with its standard library and pip", egress=True),
    "python-data": Image(
        "python-data",
        "python plus numpy, pandas, scipy and matplotlib (Agg backend, no display)",
        egress=True,
    ),
    "node": Image("node", "Node.js 18 with npm", egress=True),
    "bash": Image("bash", "bash with coreutils, grep, sed, gawk and jq; no python", egress=False),
}

LANGUAGES: dict[str, Language] = {
    "python": Language(
        name="python",
        images=("python", "python-data"),
        filename="main.py",
        command=("python3",),
        runner="python.py",
    ),
    "node": Language(
        name="node",
        images=("node",),
        filename="main.js",
        command=("node", "--max-old-space-size={memory_mb}", "--require", "/sandgate/prelude"),
        env={"NODE_PATH": "/work/node_modules:/work"},
        prelude="node.js",
        runtime_tasks=11,
    ),
    "bash": Language(name="bash", images=("bash",), filename="main.sh", command=("bash",)),
}


class UnknownLanguage(ValueError):
    """A language the engine has no image for."""


class UnknownImage(ValueError):
    """An image the engine does not know, or one that cannot run the language asked for."""


def language(name: str) -> Language:
    """Look a language up by name; raises UnknownLanguage naming the known ones."""
    return _lookup(LANGUAGES, name, "language", UnknownLanguage)


def image(name: str) -> Image:
    """Look an image up by name; raises UnknownImage naming the known ones."""
    return _lookup(IMAGES, name, "image", UnknownImage)


def _lookup(table: Mapping[str, T], name: str, kind: str, error: type[ValueError]) -> T:
    try:
        return table[name]
    except KeyError:
        raise error(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}") from None
