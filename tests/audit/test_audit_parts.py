"""Unit tests of the logic around the stores: group commit, the pool, DSNs, exports' names."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from sandgate.audit import AuditEvent, AuditRecord, AuditUnavailable
from sandgate.audit._group import GroupCommit
from sandgate.audit.chain import GENESIS, seal
from sandgate.audit.dsn import default_dsn, redacted_dsn, sqlite_path
from sandgate.audit.guard import EventGuard
from sandgate.cluster.pgserver import PgMissing, find_bindir
from sandgate.db.pool import ConnectionPool


class _SlowLog:
    """A fake commit: records batch sizes, takes a while, fails on request."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.seq = 0
        self.fail_next = False

    def commit(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        time.sleep(0.02)
        if self.fail_next:
            self.fail_next = False
            raise AuditUnavailable("database down")
        self.batches.append(len(events))
        out = []
        for ev in events:
            self.seq += 1
            out.append(seal(ev, seq=self.seq, record_id=str(self.seq), time="x", prev_hash=GENESIS))
        return out


def _concurrently(group: GroupCommit, n: int) -> tuple[dict[str, int], list[BaseException]]:
    got: dict[str, int] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def work(i: int) -> None:
        barrier.wait()
        try:
            got[f"r{i}"] = group.submit(AuditEvent(action="execute", request_id=f"r{i}")).seq
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got, errors


def test_when_appends_arrive_together_then_they_share_transactions_and_get_their_own_record() -> (
    None
):
    log = _SlowLog()
    got, errors = _concurrently(GroupCommit(log.commit), 12)
    assert not errors
    assert sorted(got.values()) == list(range(1, 13))
    assert len(log.batches) < 12 and sum(log.batches) == 12


def test_when_the_queue_exceeds_the_batch_cap_then_it_is_committed_in_chunks() -> None:
    log = _SlowLog()
    got, errors = _concurrently(GroupCommit(log.commit, max_batch=2), 9)
    assert not errors and len(got) == 9
    assert max(log.batches) <= 2


def test_when_a_shared_commit_fails_then_every_caller_in_it_hears_and_later_ones_succeed() -> None:
    log = _SlowLog()
    group = GroupCommit(log.commit)
    log.fail_next = True
    with pytest.raises(AuditUnavailable, match="database down"):
        group.submit(AuditEvent(action="execute"))
    assert group.submit(AuditEvent(action="execute")).seq == 1


def test_when_a_pool_lends_connections_then_it_reuses_and_caps_idle_ones() -> None:
    counter = iter(range(10))
    closed: list[int] = []
    pool: ConnectionPool[int] = ConnectionPool(lambda: next(counter), closed.append, max_idle=1)
    with pool.connection() as a, pool.connection() as b:
        assert a != b
    # b came back first and filled the one idle slot; a found it full and was closed.
    assert pool.idle == 1 and closed == [a]
    with pool.connection() as c:
        assert c == b
    with pytest.raises(RuntimeError), pool.connection() as d:
        raise RuntimeError("broken")
    assert d in closed and pool.idle == 0
    pool.close()
    with pytest.raises(Exception, match="closed"), pool.connection():
        pass


def test_when_an_idle_connection_is_unusable_then_it_is_closed_not_lent() -> None:
    dead = {0}
    closed: list[int] = []
    counter = iter(range(10))
    pool: ConnectionPool[int] = ConnectionPool(
        lambda: next(counter), closed.append, usable=lambda c: c not in dead
    )
    with pool.connection():
        pass
    with pool.connection() as conn:
        assert conn == 1
    assert closed == [0]


@pytest.mark.parametrize(
    ("dsn", "path"),
    [
        ("sqlite:///var/lib/sandgate/audit.db", "/var/lib/sandgate/audit.db"),
        ("sqlite:state/audit.db", "state/audit.db"),
        ("/srv/audit.db", "/srv/audit.db"),
    ],
)
def test_when_a_sqlite_dsn_is_parsed_then_it_names_the_file(dsn: str, path: str) -> None:
    assert sqlite_path(dsn) == Path(path)


def test_when_a_sqlite_url_has_a_relative_path_then_refused() -> None:
    with pytest.raises(ValueError, match="absolute"):
        sqlite_path("sqlite://relative.db")


def test_when_no_dsn_is_set_then_the_default_is_the_state_dir(tmp_path: Path) -> None:
    assert default_dsn({"SANDGATE_STATE_DIR": str(tmp_path)}) == f"sqlite://{tmp_path}/audit.db"
    assert default_dsn({"SANDGATE_AUDIT_DSN": "postgresql://h/db"}) == "postgresql://h/db"


def test_when_a_dsn_is_shown_then_its_password_is_not() -> None:
    shown = redacted_dsn("postgresql://audit:hunter2@db.internal:5432/sandgate")
    assert "hunter2" not in shown and "db.internal" in shown


def test_when_the_key_prefix_is_configured_then_the_guard_uses_it() -> None:
    guard = EventGuard(key_prefix="acme_")
    assert guard.scrub("x acme_" + "k" * 30 + " y") == "x acme_[REDACTED] y"
    assert guard.scrub("sg_" + "k" * 30) == "sg_" + "k" * 30


def test_when_postgres_binaries_are_missing_then_the_message_names_the_setup_script(
    tmp_path: Path,
) -> None:
    (tmp_path / "15" / "bin").mkdir(parents=True)  # a version directory without the binaries
    with pytest.raises(PgMissing, match=r"\.ci/postgres"):
        find_bindir(tmp_path, use_path=False)
