"""Retries against real refusals: a real 429 (the only sandbox is taken for longer than the
queue wait) and a real 503 (the sandbox image is missing until the test puts it back)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sandgate_client import AsyncSandgate, RateLimited, Sandgate, Unavailable

from tests.conftest import ADMIN_KEY, SHARED_IMAGES, make_state_dir
from tests.helpers import LiveServer, start_server, wait_for

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

HOLD_S = 4


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A service with one sandbox slot and a one-second queue wait (so `Retry-After: 1`)."""
    env = {
        "SANDGATE_API_KEY": ADMIN_KEY,
        "SANDGATE_MAX_CONCURRENCY": "1",
        "SANDGATE_QUEUE_TIMEOUT_S": "1",
    }
    with start_server(make_state_dir(tmp_path_factory.mktemp("one-slot")), env) as live:
        yield live


def _refusals(live: LiveServer, status: int) -> int:
    return sum(
        1
        for line in live.events("request")
        if line["route"] == "/execute" and line["status"] == status
    )


@pytest.fixture
def holder(one_slot: LiveServer) -> Iterator[threading.Thread]:
    """Holds the only slot for HOLD_S seconds from when the fixture returns."""
    thread = threading.Thread(
        target=lambda: httpx.post(
            f"{one_slot.url}/execute",
            json={"code": f"import time; time.sleep({HOLD_S})"},
            headers={"Authorization": f"Bearer {one_slot.key}"},
            timeout=60,
        ).raise_for_status()
    )
    thread.start()
    wait_for(lambda: _slot_taken(one_slot), "the holder's sandbox to start")
    yield thread
    thread.join()


def _slot_taken(live: LiveServer) -> bool:
    text = httpx.get(f"{live.url}/metrics", headers={"Authorization": f"Bearer {live.key}"}).text
    running = [
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("sandgate_sandboxes_running ")
    ]
    return bool(running) and running[0] >= 1


def test_when_the_only_slot_is_busy_then_429_is_retried_and_then_succeeds(
    one_slot: LiveServer, holder: threading.Thread
) -> None:
    before = _refusals(one_slot, 429)
    with Sandgate(one_slot.url, one_slot.key, max_retries=8) as client:
        result = client.execute("print('after the wait')")
    assert result.stdout == "after the wait\n"
    assert _refusals(one_slot, 429) > before, "the call was never refused: nothing was retried"


def test_when_retries_are_off_then_rate_limited_carries_retry_after(
    one_slot: LiveServer, holder: threading.Thread
) -> None:
    with Sandgate(one_slot.url, one_slot.key, max_retries=0) as client:
        with pytest.raises(RateLimited) as caught:
            client.execute("print(1)")
    assert caught.value.type == "busy" and caught.value.retry_after == 1.0


def test_when_the_async_client_meets_429_then_it_retries_and_succeeds(
    one_slot: LiveServer, holder: threading.Thread
) -> None:
    before = _refusals(one_slot, 429)

    async def call() -> str:
        async with AsyncSandgate(one_slot.url, one_slot.key, max_retries=8) as client:
            return (await client.execute("print('async after the wait')")).stdout

    assert asyncio.run(call()) == "async after the wait\n"
    assert _refusals(one_slot, 429) > before


def test_when_the_image_is_missing_then_503_is_retried_until_it_is_back(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    state = make_state_dir(tmp_path_factory.mktemp("no-image"))
    images: Path = state / "images"
    images.unlink()
    with start_server(state, {"SANDGATE_API_KEY": ADMIN_KEY}) as live:

        def put_the_image_back() -> None:
            wait_for(lambda: _refusals(live, 503) > 0, "a 503 for the missing image")
            images.symlink_to(SHARED_IMAGES)

        restorer = threading.Thread(target=put_the_image_back)
        restorer.start()
        try:
            with Sandgate(live.url, live.key, max_retries=6) as client:
                result = client.execute("print('image is back')")
        finally:
            restorer.join()
        assert result.stdout == "image is back\n"
        with Sandgate(live.url, live.key, max_retries=0) as client:
            images.unlink()
            with pytest.raises(Unavailable, match="not built"):
                client.execute("print(1)")
            images.symlink_to(SHARED_IMAGES)
