"""The runbook's policy rollback, walked for real (issue 17): a policy checkout in git, the
service reading it over real HTTP, a bad change pushed, then the runbook's own commands (read
from docs/runbook.md and run by bash, curl and jq) until the good policy is in force again."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from sandgate.settings import REPO_ROOT
from tests.conftest import ADMIN_KEY, make_state_dir
from tests.helpers import start_server, wait_for

pytestmark = pytest.mark.live

RUNBOOK = REPO_ROOT / "docs" / "runbook.md"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "ops",
    "GIT_AUTHOR_EMAIL": "ops@example.com",
    "GIT_COMMITTER_NAME": "ops",
    "GIT_COMMITTER_EMAIL": "ops@example.com",
}


def _section_commands(title: str) -> str:
    """The first shell block under the runbook's `## <title>`."""
    text = RUNBOOK.read_text()
    section = text[text.index(f"## {title}\n") :]
    found = re.search(r"```sh\n(.*?)```", section, re.S)
    assert found, f"no commands under {title!r}"
    return found.group(1)


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={**os.environ, **GIT_ENV},
    )


def _hash(client: httpx.Client) -> str:
    answer: str = client.get("/policies/default").json()["hash"]
    return answer


@pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("git", "curl", "jq")),
    reason="the runbook's commands need git, curl and jq",
)
def test_when_a_bad_policy_is_pushed_then_the_runbooks_rollback_restores_the_good_one(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "policy-repo"
    shutil.copytree(REPO_ROOT / "policies", repo / "policies")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "good policies")
    env = {"SANDGATE_API_KEY": ADMIN_KEY, "SANDGATE_POLICY_DIR": str(repo / "policies")}
    with start_server(make_state_dir(tmp_path / "state"), env) as live, live.client() as client:
        good = _hash(client)
        default = repo / "policies" / "default.yaml"
        data = yaml.safe_load(default.read_text())
        data["rate_limits"] = {"screen": {"rate": 0.01, "burst": 1}}  # the bad push
        default.write_text(yaml.safe_dump(data))
        _git(repo, "commit", "-qam", "tighten screening (bad)")
        bad = wait_for(lambda: (h := _hash(client)) != good and h, "the bad policy in force")
        screen = {"text": "hello", "stage": "input"}
        codes = [client.post("/screen", json=screen).status_code for _ in range(2)]
        assert codes == [200, 429]

        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", _section_commands("Roll back a policy")],
            cwd=REPO_ROOT,
            env={
                **os.environ,
                **GIT_ENV,
                "SANDGATE_URL": live.url,
                "KEY": ADMIN_KEY,
                "POLICY_REPO": str(repo),
                "SANDGATE_POLICY_DIR": str(repo / "policies"),
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip().splitlines()[-1] == good != bad
        assert _hash(client) == good
        assert client.post("/screen", json=screen).status_code == 200
    loads = [line for line in live.events("policy.reloaded") if line.get("changed")]
    assert len(loads) >= 2  # the bad push and the rollback, each logged with its hash
