"""A language without a runner (node and bash come this way first) runs its code as a script, in
a sandbox started for the run, on both backends: the path a pool never takes."""

from __future__ import annotations

import uuid

import pytest

from sandbox.base import ExecutionSpec, Status
from sandbox.languages import LANGUAGES, Language
from sandbox.pool import SlotClass
from tests.sandbox.conftest import Backend

pytestmark = pytest.mark.sandbox

SCRIPTED = Language(name="python-script", image="python", filename="main.py", command=("python3",))


@pytest.fixture(params=["runsc", pytest.param("docker", marks=pytest.mark.docker)])
def scripted(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """A backend that knows a runner-less language (Python run as `python3 main.py`)."""
    monkeypatch.setitem(LANGUAGES, SCRIPTED.name, SCRIPTED)
    found: Backend = request.getfixturevalue(f"{request.param}_backend")
    return found


def test_when_a_language_has_no_runner_then_its_script_runs_with_files_and_stdin(
    scripted: Backend,
) -> None:
    code = "import sys, helper; print(helper.V, sys.stdin.read(), sys.argv[0]); sys.exit(3)"
    spec = ExecutionSpec(
        execution_id=uuid.uuid4().hex,
        code=code,
        language=SCRIPTED.name,
        files={"helper.py": "V = 42"},
        stdin="in",
    )
    assert not SlotClass.of(spec).poolable
    result = scripted.run(spec)
    assert (result.status, result.exit_code) == (Status.ERROR, 3)
    assert result.stdout == "42 in /sandgate/main.py\n"
    assert scripted.leftovers() == []
