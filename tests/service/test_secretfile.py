"""The service's self-made secrets under a start-up race of several workers."""

from __future__ import annotations

import threading
from pathlib import Path

from sandgate.secretfile import persistent_secret


def test_when_many_workers_make_the_secret_at_once_then_all_read_the_same_whole_one(
    tmp_path: Path,
) -> None:
    for round_ in range(20):  # the race window is short: try it many times
        target = tmp_path / f"state{round_}" / "audit_hmac_key"
        start = threading.Barrier(16)
        values: list[str] = []

        def worker(
            target: Path = target, start: threading.Barrier = start, values: list[str] = values
        ) -> None:
            start.wait()
            values.append(persistent_secret(target))

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(set(values)) == 1 and len(values[0]) >= 40, set(values)
        assert values[0] == target.read_text().strip()
        assert oct(target.stat().st_mode & 0o777) == "0o600"
        assert [p.name for p in target.parent.iterdir()] == ["audit_hmac_key"]
