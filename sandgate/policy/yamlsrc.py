"""Reading policy YAML safely, keeping where each value was written.

`yaml.safe_load` alone is not enough for files that decide who reaches the network:
- size is capped before parsing (a 50 MB file is refused unread);
- aliases (`*name`) are refused: they are how "billion laughs" files blow up, and `extends`
  is the way to share settings between policies;
- duplicate keys are refused (PyYAML would silently keep the last `network:`);
- only the safe loader's plain types exist (`!!python/object` is an error);
- nesting is capped (`MAX_NESTING`) while the event stream is read, before any tree is
  built: the composer recurses, and 20,000 nested brackets would exhaust the stack.
Errors carry the line and column (1-based) of the offending text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = ["MAX_NESTING", "MAX_POLICY_BYTES", "Document", "YamlProblem", "parse_document"]

MAX_POLICY_BYTES = 256 * 1024
MAX_NESTING = 32
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class YamlProblem(ValueError):
    """A file that is not acceptable YAML for a policy, with where the problem is."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


@dataclass(frozen=True)
class Document:
    """A parsed file: its data and its node tree (for locating values)."""

    data: dict[str, Any]
    root: MappingNode

    def locate(self, path: tuple[str | int, ...]) -> tuple[int, int] | None:
        """(line, column) of the deepest node on `path` that exists in this file, or None if
        not even its first key is here."""
        node: Node = self.root
        found: tuple[int, int] | None = None
        for part in path:
            child = _child(node, part)
            if child is None:
                break
            key_node, node = child
            found = _position(key_node.start_mark)
        return found


def _child(node: Node, part: str | int) -> tuple[Node, Node] | None:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.value == str(part):
                return key, value
    elif isinstance(node, SequenceNode) and isinstance(part, int) and part < len(node.value):
        item: Node = node.value[part]
        return item, item
    return None


def _position(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)


def _check_tree(node: Node) -> None:
    if isinstance(node, MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, ScalarNode):
                if key.value in seen:
                    raise YamlProblem(f"duplicate key {key.value!r}", *_position(key.start_mark))
                seen.add(key.value)
            _check_tree(value)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            _check_tree(item)


def _check_events(source: str) -> None:
    """Refuse aliases and deep nesting from the event stream (which PyYAML reads iteratively)."""
    depth = 0
    for event in yaml.parse(source, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            line, column = _position(event.start_mark)
            raise YamlProblem(
                "YAML aliases (*name) are not allowed in policies; use `extends`", line, column
            )
        if isinstance(event, _OPEN):
            depth += 1
            if depth > MAX_NESTING:
                raise YamlProblem(
                    f"nested deeper than {MAX_NESTING} levels", *_position(event.start_mark)
                )
        elif isinstance(event, _CLOSE):
            depth -= 1


def parse_document(text: str | bytes) -> Document:
    """Parse one policy file; raises YamlProblem with a line and column."""
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if len(raw) > MAX_POLICY_BYTES:
        raise YamlProblem(f"file is {len(raw)} bytes; policies are at most {MAX_POLICY_BYTES}")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"not UTF-8 text (byte {exc.start})") from None
    try:
        _check_events(source)
        loader = yaml.SafeLoader(source)
        try:
            root = loader.get_single_node()
            if root is None:
                raise YamlProblem("the file is empty")
            _check_tree(root)
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(filter(None, [exc.context, exc.problem])) or "invalid YAML"
        raise YamlProblem(message, *_position(mark)) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}") from None
    if not isinstance(root, MappingNode) or not isinstance(data, dict):
        raise YamlProblem("a policy is a mapping of sections (limits:, network:, ...)")
    return Document(data=data, root=root)
