"""Loading a policy directory into one immutable, fully validated `PolicySet`.

Merge rules for `extends: parent` (applied to the YAML data, parent first, before validation):
- a mapping in the child merges into the parent's mapping, key by key, recursively;
- a list or a scalar in the child replaces the parent's value whole (`network.egress: []`
  empties the parent's allowlist; lists are never concatenated);
- keys the child does not write keep the parent's value; chains may be 8 deep; a cycle is an
  error.
A policy's hash is SHA-256 over the canonical JSON of the resolved policy (all but `extends`),
so editing a parent changes the hash of every child, and two files that resolve to the same
settings have the same hash. Bindings (`bindings.yaml`) map key names and tenants to
policies; a set is accepted whole or not at all.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sandgate.policy.bindings import BINDINGS_FILE, Bindings, read_bindings
from sandgate.policy.issues import PolicyIssue, PolicySetInvalid, error_message, unknown_key_hint
from sandgate.policy.schema import NAME_PATTERN, Policy
from sandgate.policy.yamlsrc import MAX_POLICY_BYTES, Document, YamlProblem, parse_document

__all__ = [
    "PolicySet",
    "ResolvedPolicy",
    "check_files",
    "load_policy_set",
    "resolve_text",
]

MAX_DEPTH = 8
MAX_FILES = 512


@dataclass(frozen=True)
class ResolvedPolicy:
    """A policy after `extends`, with its name, content hash and where it came from."""

    name: str
    policy: Policy
    hash: str
    source: str
    loaded_at: float

    def summary(self) -> dict[str, Any]:
        """Name, hash, parent, description, source and load time."""
        return {
            "name": self.name,
            "hash": self.hash,
            "extends": self.policy.extends,
            "description": self.policy.description,
            "source": self.source,
            "loaded_at": self.loaded_at,
        }


@dataclass(frozen=True)
class PolicySet:
    """Every policy of a directory plus the bindings; swapped whole on reload."""

    policies: Mapping[str, ResolvedPolicy]
    bindings: Bindings
    documents: Mapping[str, Document] = field(default_factory=dict)
    loaded_at: float = field(default_factory=time.time)

    def bound(self, key_name: str, tenant: str) -> ResolvedPolicy:
        """The policy bound to a key: by its name, else its tenant, else the default."""
        name = self.bindings.keys.get(key_name) or self.bindings.tenants.get(tenant)
        return self.policies[name or self.bindings.default]


def policy_hash(policy: Policy) -> str:
    """SHA-256 of the canonical JSON of a resolved policy."""
    content = policy.model_dump(mode="json", exclude={"extends"})  # what applies, not lineage
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _merge(parent: Any, child: Any) -> Any:
    if isinstance(parent, dict) and isinstance(child, dict):
        merged = dict(parent)
        for key, value in child.items():
            merged[key] = _merge(parent[key], value) if key in parent else value
        return merged
    return child


class _Loader:
    """Resolves `extends` chains over parsed documents and collects every issue."""

    def __init__(self, docs: dict[str, tuple[str, Document]]) -> None:
        self.docs = docs  # name -> (file label, document)
        self.issues: list[PolicyIssue] = []

    def issue(self, file: str, where: tuple[int, int] | None, path: str, message: str) -> None:
        line, column = where or (1, 1)
        self.issues.append(PolicyIssue(file, line, column, path, message))

    def chain(self, name: str) -> list[str] | None:
        """[name, parent, grandparent, ...], or None after recording why not."""
        chain = [name]
        while True:
            label, doc = self.docs[chain[-1]]
            parent = doc.data.get("extends")
            if parent is None:
                return chain
            if not isinstance(parent, str) or parent not in self.docs:
                known = ", ".join(sorted(self.docs)) or "none"
                self.issue(
                    label,
                    doc.locate(("extends",)),
                    "extends",
                    f"no policy named {parent!r} to extend (known: {known})",
                )
                return None
            if parent in chain:
                cycle = " -> ".join([*chain, parent])
                self.issue(label, doc.locate(("extends",)), "extends", f"cycle: {cycle}")
                return None
            chain.append(parent)
            if len(chain) > MAX_DEPTH:
                self.issue(
                    label,
                    doc.locate(("extends",)),
                    "extends",
                    f"extends chain deeper than {MAX_DEPTH}",
                )
                return None

    def resolve(self, name: str) -> Policy | None:
        """The validated policy `name`, or None after recording every problem."""
        chain = self.chain(name)
        if chain is None:
            return None
        merged: Any = {}
        for link in reversed(chain):
            merged = _merge(merged, self.docs[link][1].data)
        try:
            return Policy.model_validate(merged)
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(p for p in error["loc"] if not str(p).startswith("function-"))
                path = ".".join(str(p) for p in loc)
                message = error_message(error)
                if error["type"] == "extra_forbidden":
                    message += unknown_key_hint(loc, Policy)
                # Point at the file of the chain that wrote the value, the child first.
                for link in chain:
                    label, doc = self.docs[link]
                    where = doc.locate(loc)
                    if where is not None:
                        self.issue(label, where, path, message)
                        break
                else:
                    label, doc = self.docs[name]
                    self.issue(label, None, path, message)
            return None


def _parse_file(path: Path, label: str, issues: list[PolicyIssue]) -> Document | None:
    try:
        size = path.stat().st_size
        if size > MAX_POLICY_BYTES:  # refuse before reading a huge file into memory
            raise YamlProblem(f"file is {size} bytes; policies are at most {MAX_POLICY_BYTES}")
        return parse_document(path.read_bytes())
    except YamlProblem as exc:
        issues.append(PolicyIssue(label, exc.line, exc.column, "", exc.message))
    except OSError as exc:
        issues.append(PolicyIssue(label, 1, 1, "", f"cannot read: {exc.strerror}"))
    return None


def _policy_files(directory: Path) -> list[Path]:
    files = sorted(
        p
        for p in directory.iterdir()
        if p.suffix in (".yaml", ".yml") and p.name != BINDINGS_FILE and p.is_file()
    )
    return files[:MAX_FILES]


def _collect(files: list[Path], issues: list[PolicyIssue]) -> dict[str, tuple[str, Document]]:
    docs: dict[str, tuple[str, Document]] = {}
    for path in files:
        label = str(path)
        if not re.match(NAME_PATTERN, path.stem):
            issues.append(PolicyIssue(label, 1, 1, "", "file name must match " + NAME_PATTERN))
            continue
        if path.stem in docs:
            issues.append(PolicyIssue(label, 1, 1, "", f"policy {path.stem!r} defined twice"))
            continue
        doc = _parse_file(path, label, issues)
        if doc is not None:
            docs[path.stem] = (label, doc)
    return docs


def _load_bindings(directory: Path, names: set[str], issues: list[PolicyIssue]) -> Bindings:
    path = directory / BINDINGS_FILE
    if not path.exists():
        bindings = Bindings()
        if bindings.default not in names:
            issues.append(PolicyIssue(str(directory), 1, 1, "", "no default.yaml policy"))
        return bindings
    doc = _parse_file(path, str(path), issues)
    return Bindings() if doc is None else read_bindings(path, doc, names, issues)


def load_policy_set(directory: Path) -> PolicySet:
    """Load and validate every policy and the bindings; raises PolicySetInvalid on any issue."""
    issues: list[PolicyIssue] = []
    if not directory.is_dir():
        raise PolicySetInvalid([PolicyIssue(str(directory), 1, 1, "", "not a directory")])
    docs = _collect(_policy_files(directory), issues)
    loader = _Loader(docs)
    now = time.time()
    resolved: dict[str, ResolvedPolicy] = {}
    for name, (label, _doc) in docs.items():
        policy = loader.resolve(name)
        if policy is not None:
            resolved[name] = ResolvedPolicy(name, policy, policy_hash(policy), label, now)
    issues += loader.issues
    bindings = _load_bindings(directory, set(docs), issues)
    if issues:
        raise PolicySetInvalid(sorted(issues, key=lambda i: (i.file, i.line, i.column)))
    documents = {name: doc for name, (_label, doc) in docs.items()}
    return PolicySet(policies=resolved, bindings=bindings, documents=documents, loaded_at=now)


def check_files(files: list[Path]) -> list[PolicyIssue]:
    """Issues of the given files, resolving `extends` against their own directories."""
    issues: list[PolicyIssue] = []
    for directory in sorted({f.parent for f in files}):
        chosen = [f for f in files if f.parent == directory]
        others = [f for f in _policy_files(directory) if f not in chosen]
        docs = _collect(chosen + others, issues)
        loader = _Loader(docs)
        for path in chosen:
            if path.stem in docs:
                loader.resolve(path.stem)
        issues += loader.issues
    return issues


def resolve_text(
    text: str | bytes, name: str, parents: Mapping[str, Document]
) -> tuple[Policy | None, list[PolicyIssue]]:
    """Validate one policy given as text (for `POST /policies/validate`); `extends` resolves
    against `parents` (the running set's documents)."""
    label = f"<{name}>"
    try:
        doc = parse_document(text)
    except YamlProblem as exc:
        return None, [PolicyIssue(label, exc.line, exc.column, "", exc.message)]
    docs = {k: (f"<{k}>", d) for k, d in parents.items()}
    docs[name] = (label, doc)
    loader = _Loader(docs)
    policy = loader.resolve(name)
    return policy, loader.issues
