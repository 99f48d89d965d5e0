"""`POST /execute` with `language: node` and `bash`, over real HTTP, in real gVisor sandboxes,
under the shipped policies: `tooling` allows both, `default` only python."""

from __future__ import annotations

import pytest

from sandbox.image import ImageStore
from tests.helpers import LiveServer

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def tooling_key(server: LiveServer, images: ImageStore) -> str:
    """A key of the `tooling` tenant, bound to the tooling policy; its images built."""
    images.ensure_many(["node", "bash"], progress=lambda _line: None)
    return server.new_key("tooling-agent", tenant="tooling")


@pytest.mark.parametrize(
    ("language", "code", "stdout"),
    [
        ("node", "console.log(6 * 7, process.argv[1])", "42 /sandgate/main.js\n"),
        ("bash", 'echo $((6 * 7)) "$0" $(jq -n 1)', "42 /sandgate/main.sh 1\n"),
        ("python", "import sys; print(6 * 7, sys.argv[0])", "42 /sandgate/main.py\n"),
    ],
)
def test_when_tooling_runs_a_language_then_its_image_runs_its_file(
    server: LiveServer, tooling_key: str, language: str, code: str, stdout: str
) -> None:
    with server.client(key=tooling_key) as client:
        response = client.post("/execute", json={"code": code, "language": language})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["stdout"], body["policy"]["name"]) == ("ok", stdout, "tooling")


@pytest.mark.parametrize("language", ["node", "bash"])
def test_when_default_is_asked_for_node_or_bash_then_403_and_nothing_runs(
    server: LiveServer, language: str
) -> None:
    with server.client() as client:
        response = client.post("/execute", json={"code": "true", "language": language})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["type"] == "policy_refused"
    assert f"language {language!r} is not allowed" in response.json()["error"]["message"]
