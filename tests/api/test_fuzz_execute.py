"""schemathesis against the real service on real gVisor: `/execute`, fuzzed from the app's own
OpenAPI document with a small budget, answers no 5xx and nothing the document does not say
(issue 11). The wider fuzzing of every route runs in process (`tests/service/test_openapi.py`)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.helpers import LiveServer
from tests.service.test_openapi import SCHEMA, send_and_validate

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as authenticated:
        yield authenticated


@SCHEMA.include(path="/execute").parametrize()
@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_when_execute_is_fuzzed_on_real_gvisor_then_no_5xx_and_it_conforms(
    case: schemathesis.Case, client: httpx.Client
) -> None:
    send_and_validate(case, client, dict(client.headers))
