"""Key expiry, rotation with a grace period, warnings near expiry and `last_used_at` (issue 17):
the real key store, the real `sandgate keys` commands, and the app in process."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandgate.keys import DEFAULT_LIFETIME_S, SqliteKeyStore
from sandgate.settings import REPO_ROOT
from tests.inproc import inproc
from tests.service._policies import policies_with

SCREEN = {"text": "hello", "stage": "input"}


def _sandgate(
    state: Path, *args: str, policies: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "SANDGATE_STATE_DIR": str(state),
        **({"SANDGATE_POLICY_DIR": str(policies)} if policies else {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "sandgate", "keys", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_when_a_key_has_expired_then_401_says_so_and_names_the_key(tmp_path: Path) -> None:
    with inproc(tmp_path / "state") as service:
        secret, record = service.services.keys.create("old", expires_at=time.time() - 1)
        answer = service.request("POST", "/screen", key=secret, json=SCREEN)
        unknown = service.request("POST", "/screen", key="sg_" + "x" * 43, json=SCREEN)
    assert answer.status_code == 401
    message = answer.json()["error"]["message"]
    assert "expired" in message and record.id in message and secret not in message
    assert "expired" not in unknown.json()["error"]["message"]


def test_when_a_key_is_rotated_then_both_work_in_the_grace_period_and_the_old_expires(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    policies = policies_with(tmp_path / "policies", default={"keys": {"expiry_days": 30}})
    made = _sandgate(state, "create", "--name", "agent", policies=policies)
    assert made.returncode == 0, made.stderr
    old_secret = made.stdout.strip()
    store = SqliteKeyStore(state / "keys.db")
    (old,) = store.list()
    assert old.expires_at == pytest.approx(time.time() + 30 * 86_400, abs=60)
    rotated = _sandgate(state, "rotate", old.id, "--grace-hours", "0.0005", policies=policies)
    assert rotated.returncode == 0, rotated.stderr
    new_secret = rotated.stdout.strip()
    assert new_secret.startswith("sg_") and new_secret != old_secret
    with inproc(state, policy_dir=policies) as service:
        during = [
            service.request("POST", "/screen", key=k, json=SCREEN).status_code
            for k in (old_secret, new_secret)
        ]
        time.sleep(2)  # the 1.8 s grace passes
        after = [
            service.request("POST", "/screen", key=k, json=SCREEN).status_code
            for k in (old_secret, new_secret)
        ]
    assert during == [200, 200] and after == [401, 200]
    keys = {k.id: k for k in SqliteKeyStore(state / "keys.db").list()}
    new = next(k for k in keys.values() if k.id != old.id)
    assert keys[old.id].rotated_to == new.id
    assert (new.name, new.tenant, new.scopes) == (old.name, old.tenant, old.scopes)
    assert _sandgate(state, "rotate", "nope", policies=policies).returncode == 1
    store.close()


def test_when_a_key_nears_expiry_then_ready_and_the_log_warn(tmp_path: Path) -> None:
    with inproc(tmp_path / "state") as service:
        _secret, soon = service.services.keys.create("soon", expires_at=time.time() + 3 * 86_400)
        service.services.keys.create("later")
        warnings = service.client.get("/ready").json()["warnings"]
    about = [w for w in warnings if "expires" in w]
    assert len(about) == 1 and soon.id in about[0] and "keys rotate" in about[0]


def test_when_keys_are_used_then_last_used_at_is_written_in_one_batch(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys.db")
    secret, record = store.create("busy")
    for at in (100.0, 300.0, 200.0):
        store.touch(record.id, at)
    assert store.get(record.id).last_used_at is None  # type: ignore[union-attr]
    assert store.flush_last_used() == 1
    assert store.get(record.id).last_used_at == 200.0  # type: ignore[union-attr]
    store.touch(record.id, 150.0)  # an older note (another worker's) never moves it back
    store.close()  # flushes
    again = SqliteKeyStore(tmp_path / "keys.db")
    assert again.lookup(secret).last_used_at == 200.0  # type: ignore[union-attr]
    again.close()


def test_when_the_service_serves_a_key_then_its_last_use_reaches_the_store(
    tmp_path: Path,
) -> None:
    with inproc(tmp_path / "state") as service:
        secret = service.new_key("seen")
        before = time.time()
        assert service.request("POST", "/screen", key=secret, json=SCREEN).status_code == 200
    (seen,) = [k for k in SqliteKeyStore(tmp_path / "state" / "keys.db").list() if k.name == "seen"]
    assert seen.last_used_at is not None and seen.last_used_at >= before


def test_when_a_key_database_predates_expiry_then_its_keys_gain_one(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE api_keys (digest TEXT PRIMARY KEY, id TEXT UNIQUE, name TEXT NOT NULL,"
        " tenant TEXT NOT NULL, scopes TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL)"
    )
    db.execute("INSERT INTO api_keys VALUES ('d', 'id1', 'n', 'default', 'execute', 1.0, NULL)")
    db.commit()
    db.close()
    store = SqliteKeyStore(path)
    (key,) = store.list()
    store.close()
    assert key.expires_at == pytest.approx(time.time() + DEFAULT_LIFETIME_S, abs=60)
