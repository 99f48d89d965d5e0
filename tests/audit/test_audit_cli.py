"""`sandgate audit ...` on both backends: verify, export, checkpoint, prune, exit codes."""

from __future__ import annotations

import json
import logging
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from click.testing import CliRunner, Result

from sandgate.audit import AuditStore
from sandgate.audit.cli import audit
from sandgate.settings import REPO_ROOT
from tests.audit.helpers import HMAC_KEY, RawDb, event

ENV = {"SANDGATE_AUDIT_HMAC_KEY": HMAC_KEY.decode()}


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """The CLI configures logging for its process; keep that out of the other tests."""
    configured, config = structlog.is_configured(), structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    if configured:
        structlog.configure(**config)
    else:
        structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(autouse=True)
def _from_a_checkout_after_make_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from a directory whose `.state` holds a service's own HMAC key, as a checkout's does
    after `make run`: no test may pick up a key it did not set itself."""
    state = tmp_path / "checkout" / ".state"
    state.mkdir(parents=True)
    (state / "audit_hmac_key").write_text("a-key-that-make-run-left-behind")
    monkeypatch.chdir(state.parent)


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(audit, list(args), env=ENV if env is None else env)


def test_when_the_log_holds_then_verify_says_so_and_exits_0(store: AuditStore, dsn: str) -> None:
    store.append_many([event(n) for n in range(5)])
    store.checkpoint(HMAC_KEY)
    result = _run("verify", "--db", dsn)
    assert result.exit_code == 0, result.output
    assert "all 5 records hold" in result.stdout and "vouch through seq 5" in result.stdout


def test_when_no_key_is_set_then_verify_warns_that_signatures_went_unchecked(
    store: AuditStore, dsn: str, tmp_path: Path
) -> None:
    store.append(event())
    result = _run("verify", "--db", dsn, env={"SANDGATE_STATE_DIR": str(tmp_path / "own")})
    assert result.exit_code == 0 and "not checked" in result.stderr


def test_when_a_row_is_tampered_then_verify_names_it_and_exits_1(
    store: AuditStore, dsn: str, raw: RawDb
) -> None:
    store.append_many([event(n) for n in range(5)])
    raw.drop_triggers()
    raw.execute("UPDATE audit_records SET key_name = 'someone else' WHERE seq = 3")
    result = _run("verify", "--db", dsn)
    assert result.exit_code == 1
    assert "record seq 3 does not hold" in result.stdout


def test_when_the_database_is_unavailable_then_the_cli_exits_3(tmp_path: Path) -> None:
    result = _run("verify", "--db", f"sqlite://{tmp_path}/missing/audit.db")
    assert result.exit_code == 3 and "No such file or directory" in result.stderr


def test_when_no_db_is_given_then_the_state_dir_default_is_used(tmp_path: Path) -> None:
    env = {**ENV, "SANDGATE_STATE_DIR": str(tmp_path)}
    assert _run("checkpoint", env=env).exit_code == 1  # empty log: nothing to sign
    assert (tmp_path / "audit.db").exists()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "ocsf"])
def test_when_exported_to_a_file_then_the_file_verifies(
    store: AuditStore, dsn: str, tmp_path: Path, fmt: str
) -> None:
    store.append_many([event(n) for n in range(7)])
    out = tmp_path / f"export.{fmt}"
    result = _run("export", "--db", dsn, "--format", fmt, "-o", str(out), "--checkpoint")
    assert result.exit_code == 0, result.output
    assert "exported 7 records" in result.stderr
    assert not list(tmp_path.glob("*.partial"))
    checked = _run("verify", "--file", str(out), "--format", fmt)
    assert checked.exit_code == 0 and "all 7 records hold" in checked.stdout


def test_when_exported_to_stdout_then_csv_starts_with_its_header(
    store: AuditStore, dsn: str
) -> None:
    store.append(event())
    result = _run("export", "--db", dsn, "--format", "csv")
    assert result.stdout.splitlines()[0].startswith("seq,id,time,action,verdict")


def test_when_exporting_one_tenant_then_it_verifies_only_as_a_filtered_slice(
    store: AuditStore, dsn: str, tmp_path: Path
) -> None:
    store.append_many([event(n) for n in range(9)])
    out = tmp_path / "globex.jsonl"
    assert _run("export", "--db", dsn, "--tenant", "globex", "-o", str(out)).exit_code == 0
    assert {json.loads(line)["tenant"] for line in out.read_text().splitlines()} == {"globex"}
    assert _run("verify", "--file", str(out), "--filtered").exit_code == 0
    assert _run("verify", "--file", str(out)).exit_code == 1


def test_when_exporting_since_a_time_then_only_later_records_are_asked_for(
    store: AuditStore, dsn: str
) -> None:
    store.append_many([event(n) for n in range(3)])
    time.sleep(0.01)
    later = store.append(event(3))
    result = _run("export", "--db", dsn, "--since", later.time, "--no-anchor")
    assert [json.loads(line)["seq"] for line in result.stdout.splitlines()] == [4]


def test_when_a_filter_is_too_long_then_usage_error(dsn: str) -> None:
    result = _run("export", "--db", dsn, "--tenant", "t" * 300)
    assert result.exit_code == 2 and "--tenant" in result.stderr


@pytest.mark.parametrize("since", ["yesterday", "2024-13-01"])
def test_when_a_time_is_not_iso_then_usage_error(dsn: str, since: str) -> None:
    result = _run("export", "--db", dsn, "--since", since)
    assert result.exit_code == 2 and "ISO-8601" in result.stderr


def test_when_checkpointing_then_the_line_printed_is_a_witness_for_verify(
    store: AuditStore, dsn: str, raw: RawDb, tmp_path: Path
) -> None:
    store.append_many([event(n) for n in range(6)])
    result = _run("checkpoint", "--db", dsn)
    assert result.exit_code == 0 and json.loads(result.stdout)["checkpoint"]["seq"] == 6
    witness = tmp_path / "kept.jsonl"
    witness.write_text(result.stdout)
    raw.drop_triggers()
    raw.execute("DELETE FROM audit_records WHERE seq > 4")
    raw.execute("DELETE FROM audit_checkpoints")
    raw.execute(
        "UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM audit_records WHERE seq = 4)"
    )
    assert _run("verify", "--db", dsn).exit_code == 0
    caught = _run("verify", "--db", dsn, "--witness", str(witness))
    assert caught.exit_code == 1 and "record seq 5" in caught.stdout


def test_when_no_key_is_set_then_checkpoint_and_prune_refuse(dsn: str, tmp_path: Path) -> None:
    # A state directory without the service's own key file either.
    for args in (["checkpoint"], ["prune", "--days", "30"]):
        result = _run(*args, "--db", dsn, env={"SANDGATE_STATE_DIR": str(tmp_path)})
        assert result.exit_code == 2 and "SANDGATE_AUDIT_HMAC_KEY" in result.stderr


def test_when_pruning_then_old_records_go_and_verify_still_passes(
    store: AuditStore, dsn: str
) -> None:
    store.append_many([event(n) for n in range(5)])
    time.sleep(0.01)
    cut = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    store.append_many([event(n) for n in range(5, 8)])
    assert "nothing older" in _run("prune", "--db", dsn, "--days", "1").stdout
    result = _run("prune", "--db", dsn, "--before", cut)
    assert result.exit_code == 0 and "pruned 5 records" in result.stdout
    assert "all 3 records hold" in _run("verify", "--db", dsn).stdout


def test_when_pruning_by_policy_then_the_longest_retention_applies(
    store: AuditStore, dsn: str, tmp_path: Path
) -> None:
    (tmp_path / "default.yaml").write_text("audit: {retention_days: 30}\n")
    (tmp_path / "long.yaml").write_text("audit: {retention_days: 400}\n")
    store.append_many([event(n) for n in range(3)])
    result = _run("prune", "--db", dsn, "--policies", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "retention: 400 days" in result.stdout and "nothing older" in result.stdout
    assert store.count() == 3


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--days", "3", "--policies", "policies"],
        ["--days", "3", "--before", "2024-01-01"],
        ["--days", "0"],
        ["--before", (datetime.now(UTC) + timedelta(days=1)).isoformat()],
    ],
)
def test_when_prune_is_asked_wrongly_then_usage_error_and_nothing_deleted(
    store: AuditStore, dsn: str, args: list[str]
) -> None:
    store.append(event())
    assert _run("prune", "--db", dsn, *args).exit_code == 2
    assert store.count() == 1


def test_when_exporting_to_a_file_on_a_terminal_then_a_progress_bar_shows(
    store: AuditStore, dsn: str, tmp_path: Path
) -> None:
    store.append_many([event(n) for n in range(50)])
    out = tmp_path / "export.jsonl"
    code = "from sandgate.audit.cli import audit; audit()"
    controller, terminal = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "COLUMNS": "80"}
    child = subprocess.Popen(
        [sys.executable, "-c", code, "export", "--db", dsn, "-o", str(out)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    shown = b""
    while True:
        ready, _, _ = select.select([controller], [], [], 60)
        try:
            chunk = os.read(controller, 4096) if ready else b""
        except OSError:  # the child closed the terminal
            chunk = b""
        if not chunk:
            break
        shown += chunk
    os.close(controller)
    assert child.wait(timeout=60) == 0
    assert b"exporting" in shown and b"100%" in shown
    assert len(out.read_text().splitlines()) == 50


def test_when_the_terminal_is_not_utf8_then_the_export_still_is(
    store: AuditStore, dsn: str
) -> None:
    store.append(event(content={"code": "print('héllo ✓')"}))
    code = "from sandgate.audit.cli import audit; audit()"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONIOENCODING": "ascii"}
    done = subprocess.run(
        [sys.executable, "-c", code, "export", "--db", dsn],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert json.loads(done.stdout.decode("utf-8"))["content"]["code"] == "print('héllo ✓')"
