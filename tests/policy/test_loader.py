"""Policy files: the shipped set, merge rules, and every kind of bad input, located exactly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sandgate.policy.bindings import Bindings
from sandgate.policy.cli import schema_text
from sandgate.policy.issues import PolicySetInvalid
from sandgate.policy.loader import load_policy_set
from sandgate.policy.schema import Policy
from sandgate.policy.strictness import looser_points
from sandgate.settings import REPO_ROOT

SHIPPED = REPO_ROOT / "policies"


def write_set(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text))
    return directory


def issues_of(directory: Path) -> list[str]:
    with pytest.raises(PolicySetInvalid) as caught:
        load_policy_set(directory)
    return [str(i) for i in caught.value.issues]


def test_when_shipped_policies_load_then_all_valid_with_hashes() -> None:
    loaded = load_policy_set(SHIPPED)
    assert set(loaded.policies) == {
        "default",
        "strict",
        "data-analysis",
        "customer-support",
        "tooling",
    }
    assert all(len(p.hash) == 64 for p in loaded.policies.values())
    default = loaded.policies["default"].policy
    assert default.network.egress == []
    assert loaded.policies["data-analysis"].policy.limits.memory_mb > default.limits.memory_mb
    assert loaded.bound("anyone", "finance").name == "data-analysis"
    assert loaded.bound("anyone", "nobody-knows").name == "default"


def test_when_strict_compared_to_default_then_stricter_and_not_the_reverse() -> None:
    loaded = load_policy_set(SHIPPED)
    strict, default = loaded.policies["strict"].policy, loaded.policies["default"].policy
    assert looser_points(strict, default) == []
    assert looser_points(default, strict) != []
    analysis = loaded.policies["data-analysis"].policy
    points = looser_points(analysis, default)
    assert any("network.egress 'pypi.org:443'" in p for p in points)
    assert any("limits.memory_mb" in p for p in points)


def test_when_cli_checks_shipped_policies_then_exit_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sandgate", "policy", "check", str(SHIPPED)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("ok ") == 5


def test_when_schema_json_is_compared_to_the_models_then_it_is_current() -> None:
    assert (SHIPPED / "schema.json").read_text() == schema_text(Policy), (
        "policies/schema.json is stale: run `sandgate policy schema --write policies`"
    )
    assert (SHIPPED / "bindings.schema.json").read_text() == schema_text(Bindings)


# -- merge rules ---------------------------------------------------------------------------

BASE = """
    limits: {timeout_s: 8, memory_mb: 200}
    network: {egress: ["a.example.com:443", "b.example.com:443"]}
    labels: {team: base, tier: one}
"""


def test_when_child_extends_then_maps_merge_and_lists_and_scalars_replace(tmp_path: Path) -> None:
    d = write_set(
        tmp_path,
        {
            "default.yaml": BASE,
            "child.yaml": """
            extends: default
            limits: {memory_mb: 100}
            network: {egress: ["c.example.com:443"]}
            labels: {tier: two}
        """,
            "grandchild.yaml": """
            extends: child
            network: {egress: []}
        """,
        },
    )
    loaded = load_policy_set(d)
    child = loaded.policies["child"].policy
    assert (child.limits.timeout_s, child.limits.memory_mb) == (8, 100)  # map merged
    assert child.network.egress == ["c.example.com:443"]  # list replaced, not concatenated
    assert child.labels == {"team": "base", "tier": "two"}
    grand = loaded.policies["grandchild"].policy
    assert grand.network.egress == [] and grand.limits.memory_mb == 100
    assert grand.extends == "child"


def test_when_parent_changes_then_child_hash_changes(tmp_path: Path) -> None:
    d = write_set(tmp_path, {"default.yaml": BASE, "child.yaml": "extends: default\n"})
    before = load_policy_set(d).policies["child"].hash
    (d / "default.yaml").write_text(BASE.replace("timeout_s: 8", "timeout_s: 9"))
    assert load_policy_set(d).policies["child"].hash != before


def test_when_values_are_unchanged_then_hash_is_stable(tmp_path: Path) -> None:
    d = write_set(tmp_path, {"default.yaml": BASE})
    first = load_policy_set(d).policies["default"].hash
    (d / "default.yaml").write_text("# a comment changes nothing\n" + textwrap.dedent(BASE))
    assert load_policy_set(d).policies["default"].hash == first


# -- bad input, one case per shape -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("limits: {memory_mb: 0}\n", "bad.yaml:1:10: limits.memory_mb: must be > 0"),
        ("limits:\n  memory_mb: -5\n", "bad.yaml:2:3: limits.memory_mb: must be > 0"),
        ("limits: {memory_mb: 10000000}\n", "limits.memory_mb: must be <= 65536"),
        ("limits: {timeout_s: 1e12}\n", "limits.timeout_s: must be <= 3600"),
        ("limits: {max_processes: 2}\n", "limits.max_processes: must be >= 4"),
        ("limits: {memory_mb: lots}\n", "limits.memory_mb: Input should be a valid integer"),
        (
            "network:\n  egres: ['pypi.org:443']\n",
            "bad.yaml:2:3: network.egres: unknown key (did you mean 'egress'?)",
        ),
        ("netwrk: {}\n", "bad.yaml:1:1: netwrk: unknown key (did you mean 'network'?)"),
        ("network: {egress: ['*:443']}\n", "network.egress: egress entry '*:443'"),
        ("network: {egress: ['*.com:443']}\n", "network.egress"),
        ("network: {egress: ['https://pypi.org:443']}\n", "network.egress"),
        ("network: {egress: ['pypi.org']}\n", "network.egress"),
        ("network: {egress: ['user:pw@pypi.org:443']}\n", "network.egress"),
        (
            "screening:\n  input: {detectors: [pii, telepathy]}\n",
            "screening.input.detectors: unknown detector(s) ['telepathy']",
        ),
        ("screening: {input: {actions: {CREDIT_CARD: shred}}}\n", "screening.input.actions"),
        ("audit: {content: everything}\n", "audit.content"),
        ("languages: [cobol]\n", "languages: unknown language(s) ['cobol']"),
        ("images: [windows]\n", "bad.yaml:1:1: images: unknown image(s) ['windows']"),
        ("images: []\n", "images: List should have at least 1 item"),
        (
            "languages: [python]\nimages: [node]\n",
            "bad.yaml:2:1: images: image 'node' runs none of the allowed languages ['python']",
        ),
        (
            "languages: [python, bash]\nimages: [python-data]\n",
            "images: language 'bash' has none of its images ['bash'] allowed",
        ),
        ("limits: {memory_mb: 64\n", "bad.yaml:2:1:"),
        ("- just\n- a list\n", "a policy is a mapping"),
        ("", "the file is empty"),
        (
            "network: {}\nnetwork: {egress: ['x.example.com:443']}\n",
            "bad.yaml:2:1: duplicate key 'network'",
        ),
        (
            "x: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
            "bad.yaml:1:4: could not determine a constructor",
        ),
        ("a: &a ['x','x']\nb: &b [*a,*a]\nc: [*b,*b]\n", "bad.yaml:2:8: YAML aliases"),
        ("extends: nowhere\n", "bad.yaml:1:1: extends: no policy named 'nowhere'"),
    ],
)
def test_when_policy_is_bad_then_located_issue(tmp_path: Path, text: str, expected: str) -> None:
    d = write_set(tmp_path, {"default.yaml": BASE})
    (d / "bad.yaml").write_text(text)
    issues = issues_of(d)
    assert any(expected in issue for issue in issues), issues
    assert all(issue.startswith(str(d / "bad.yaml")) for issue in issues)


def test_when_extends_is_cyclic_then_issue_names_the_cycle(tmp_path: Path) -> None:
    d = write_set(
        tmp_path, {"default.yaml": BASE, "a.yaml": "extends: b\n", "b.yaml": "extends: a\n"}
    )
    assert any("extends: cycle: a -> b -> a" in i for i in issues_of(d))


def test_when_binding_names_a_missing_policy_then_issue_in_bindings(tmp_path: Path) -> None:
    d = write_set(tmp_path, {"default.yaml": BASE, "bindings.yaml": "tenants:\n  finance: ghost\n"})
    message = "tenants.finance: binds to 'ghost', which is not a loaded policy"
    assert issues_of(d) == [f"{d / 'bindings.yaml'}:2:3: {message}"]


def test_when_default_policy_is_missing_then_set_is_invalid(tmp_path: Path) -> None:
    d = write_set(tmp_path, {"other.yaml": BASE})
    assert any("no default.yaml" in i for i in issues_of(d))


def test_when_file_is_50mb_then_refused_unread(tmp_path: Path) -> None:
    d = write_set(tmp_path, {"default.yaml": BASE})
    with open(d / "huge.yaml", "wb") as f:
        f.truncate(50 << 20)
    assert any("52428800 bytes; policies are at most" in i for i in issues_of(d))


def test_when_cli_checks_a_broken_file_then_exit_1_with_locations(tmp_path: Path) -> None:
    d = write_set(tmp_path, {"default.yaml": BASE, "bad.yaml": "limits: {memory_mb: 0}\n"})
    done = subprocess.run(
        [sys.executable, "-m", "sandgate", "policy", "check", str(d / "bad.yaml")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 1
    assert f"{d / 'bad.yaml'}:1:10: limits.memory_mb: must be > 0" in done.stderr


def test_when_shipped_files_are_copied_and_one_broken_then_the_whole_set_is_refused(
    tmp_path: Path,
) -> None:
    d = tmp_path / "p"
    shutil.copytree(SHIPPED, d)
    (d / "strict.yaml").write_text("extends: default\nlimits: {max_processes: 0}\n")
    with pytest.raises(PolicySetInvalid):
        load_policy_set(d)
