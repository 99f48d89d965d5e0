"""A copy of the shipped policies with sections merged into some of them, for one test."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from sandgate.settings import REPO_ROOT

__all__ = ["policies_with"]


class _NoAliases(yaml.SafeDumper):
    """Writes a value used twice in full: policies refuse YAML aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def policies_with(directory: Path, **changes: dict[str, Any]) -> Path:
    """`policies/` copied to `directory`, each `name=sections` merged into `name.yaml`
    (section by section; `bindings` merges into bindings.yaml)."""
    shutil.copytree(REPO_ROOT / "policies", directory)
    for name, sections in changes.items():
        path = directory / f"{name.replace('_', '-')}.yaml"
        data = yaml.safe_load(path.read_text()) or {}
        for section, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(section), dict):
                data[section] = {**data[section], **value}
            else:
                data[section] = value
        path.write_text(yaml.dump(data, Dumper=_NoAliases, sort_keys=False))
    return directory
