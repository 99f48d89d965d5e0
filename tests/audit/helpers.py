"""Helpers for the audit tests: sample events, raw database access, child processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from typing import Any

import psycopg

from sandgate.audit import AuditEvent
from sandgate.settings import REPO_ROOT

__all__ = ["HMAC_KEY", "RawDb", "event", "run_child", "spawn_child"]

HMAC_KEY = b"test-checkpoint-key-0123456789abcdef"


def event(n: int = 0, **fields: Any) -> AuditEvent:
    """A plausible /execute event; `fields` override."""
    base: dict[str, Any] = {
        "action": "execute",
        "verdict": "allow" if n % 2 == 0 else "block",
        "status": "ok",
        "tenant": "acme" if n % 3 else "globex",
        "key_id": f"key-{n % 4}",
        "key_name": f"agent {n % 4}",
        "policy_name": "default",
        "policy_hash": "ab" * 32,
        "request_id": f"req-{n}",
        "client": "127.0.0.1",
        "content": {"code": f"print({n})", "stdout": f"{n}\n"},
        "details": {"wall_ms": 10 + n, "cpu_ms": n, "findings": [], "score": 0.5},
    }
    base.update(fields)
    return AuditEvent(**base)


class RawDb:
    """Direct database access, the way an attacker with the file or a DB login has it."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.is_pg = dsn.startswith("postgresql://")

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run one statement (written with `?` placeholders) and commit it."""
        if self.is_pg:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                if params:
                    cur = conn.execute(sql.replace("?", "%s"), params)
                else:  # no placeholders: a literal % (in LIKE) must not be parsed as one
                    cur = conn.execute(sql)
                return cur.fetchall() if cur.description else []
        lite = sqlite3.connect(self.dsn[len("sqlite://") :], isolation_level=None)
        try:
            return lite.execute(sql, params).fetchall()
        finally:
            lite.close()

    def drop_triggers(self) -> None:
        """Remove the append-only triggers."""
        if self.is_pg:
            rows = self.execute(
                "SELECT tgname, relname FROM pg_trigger JOIN pg_class ON pg_class.oid = tgrelid "
                "WHERE NOT tgisinternal AND relname LIKE 'audit_%' "
                "AND relnamespace = to_regnamespace(current_schema())"
            )
            for name, table in rows:
                self.execute(f"DROP TRIGGER {name} ON {table}")
        else:
            for (name,) in self.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
                self.execute(f"DROP TRIGGER {name}")


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SANDGATE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def spawn_child(code: str, *args: str) -> subprocess.Popen[str]:
    """Start `python -c code args...` with the repository importable; stdout is piped."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(),
        cwd=REPO_ROOT,
    )


def run_child(code: str, *args: str, timeout: float = 300) -> str:
    """Run `python -c code args...` to the end; its stdout (fails on a non-zero exit)."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=_child_env(),
        cwd=REPO_ROOT,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
