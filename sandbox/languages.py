"""Languages the engine can run: which image, which file the code goes in, which command runs it."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LANGUAGES", "Language", "UnknownLanguage", "language"]


@dataclass(frozen=True)
class Language:
    """How to run code of one language inside its image.

    `runner` names the language's in-sandbox runner under `sandbox/runner/` (PROTOCOL.md): its
    code then arrives in a frame and its sandboxes can be started ahead (the warm pool). Without
    one, the code is a file `filename` that `command` runs, in a sandbox started for it.
    """

    name: str
    image: str
    filename: str
    command: tuple[str, ...]
    runner: str | None = None


LANGUAGES: dict[str, Language] = {
    "python": Language(
        name="python", image="python", filename="main.py", command=("python3",), runner="python.py"
    ),
}


class UnknownLanguage(ValueError):
    """A language the engine has no image for."""


def language(name: str) -> Language:
    """Look a language up by name; raises UnknownLanguage naming the known ones."""
    try:
        return LANGUAGES[name]
    except KeyError:
        known = ", ".join(sorted(LANGUAGES))
        raise UnknownLanguage(f"unknown language {name!r}; known: {known}") from None
