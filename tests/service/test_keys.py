"""The key store under the start-up race of several workers seeding SANDGATE_API_KEY."""

from __future__ import annotations

import threading
from pathlib import Path

from sandgate.keys import KeyStore, Scope, SqliteKeyStore

SECRET = "sg_" + "k" * 43


def test_when_many_workers_seed_the_env_key_at_once_then_all_start_and_one_key_stays(
    tmp_path: Path,
) -> None:
    for round_ in range(20):  # the race window is short: try it many times
        path = tmp_path / f"state{round_}" / "keys.db"
        stores = [SqliteKeyStore(path) for _ in range(8)]  # one connection each, as workers have
        start = threading.Barrier(len(stores))
        failures: list[BaseException] = []

        def worker(
            store: KeyStore,
            start: threading.Barrier = start,
            failures: list[BaseException] = failures,
        ) -> None:
            start.wait()
            try:
                store.seed(SECRET)
            except Exception as exc:  # noqa: BLE001 - the test reports every failure
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failures == []
        keys = stores[0].list()
        assert [(k.name, k.scopes) for k in keys] == [("env", [Scope.ADMIN])]
        assert all(store.lookup(SECRET) == keys[0] for store in stores)
        for store in stores:
            store.close()


def test_when_the_env_key_changes_then_the_old_one_is_gone(tmp_path: Path) -> None:
    store = SqliteKeyStore(tmp_path / "keys.db")
    store.seed(SECRET)
    store.seed(SECRET.replace("k", "m"))
    assert store.lookup(SECRET) is None
    assert [k.name for k in store.list()] == ["env"]
    store.close()
