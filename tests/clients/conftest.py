"""Fixtures of the client tests: SDK clients on the session's real service."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sandgate_client import Sandgate

from tests.helpers import LiveServer


@pytest.fixture
def sandgate(server: LiveServer) -> Iterator[Sandgate]:
    """The synchronous client on the session's service, with the admin key."""
    with Sandgate(server.url, server.key) as client:
        yield client
