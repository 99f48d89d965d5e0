"""Webhooks: the answer of an asynchronous execution, POSTed signed to the URL the caller gave.

The body is the `ExecutionState` JSON (as `GET /executions/{id}` shows it), signed with
`X-Sandgate-Signature: sha256=<hex HMAC-SHA256 of the body bytes>` under the service's webhook
secret. A receiver verifies it with `verify(secret, body, header)` (or its own three lines).

Delivery goes to an address checked like egress: the name is resolved once, and loopback,
private, link-local, reserved and multicast addresses are refused (unless
`SANDGATE_WEBHOOK_ALLOW_PRIVATE`, for tests and labs), cloud-metadata addresses always; the
request then connects to the checked address (TLS still verifies the name), so a name cannot
resolve one way for the check and another for the connect. Redirects are not followed.

Each delivery's outcome is an audit record (`webhook`, verdict `delivered` or `dead`, the URL
without its query, the attempts and the last error), retried until the store takes it.

A 2xx answer is a delivery. Anything else (an error status, a refused or failed connection, a
timeout) is retried with exponential backoff (tenacity), `attempts` times in all; then the
execution is dead-lettered (`GET /executions?status=dead`). A refused address is not retried.
Delivery is at least once: a worker that dies while delivering leaves the delivery to another,
so receivers should treat `execution_id` as an idempotency key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from sandbox.egress import SystemResolver
from sandbox.egress.address import HostError, blocked_category, normalise_host, parse_ip
from sandbox.egress.base import ResolveError
from sandgate import __version__
from sandgate.audit.auditor import Auditor
from sandgate.audit.errors import AuditUnavailable
from sandgate.dispatch.base import ExecutionState, WebhookState

__all__ = ["SIGNATURE_HEADER", "Webhooks", "sign", "verify"]

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Sandgate-Signature"
MAX_BACKOFF_S = 300.0
TIMEOUT_S = 10.0


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value for `body`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, header: str) -> bool:
    """Whether `header` is the signature of `body` (compared in constant time)."""
    return hmac.compare_digest(sign(secret, body), header)


class _Refused(Exception):
    """The URL's address may not be reached: not retried."""


class _Failed(Exception):
    """This attempt failed; the next one may not."""


@dataclass(frozen=True)
class _Target:
    url: str
    host_header: str
    sni: str | None  # the name TLS verifies; None for an address literal


class Webhooks:
    """Delivers answers to webhook URLs, retrying, and says how it went."""

    def __init__(
        self,
        secret: bytes,
        *,
        attempts: int,
        backoff_s: float,
        allow_private: bool,
        auditor: Auditor | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._secret = secret
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._allow_private = allow_private
        self._auditor = auditor
        self._client = client or httpx.AsyncClient(timeout=TIMEOUT_S, follow_redirects=False)
        self._resolver = SystemResolver()

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    async def deliver(self, url: str, state: ExecutionState) -> WebhookState:
        """POST `state` to `url` until a 2xx or the attempts run out; audited."""
        outcome = await self._deliver(url, state)
        if self._auditor is not None:
            await self._record(url, state, outcome)
        return outcome

    async def _record(self, url: str, state: ExecutionState, outcome: WebhookState) -> None:
        parts = urlsplit(url)
        event = Auditor.event(
            "webhook",
            key=None,
            request_id=state.response.request_id if state.response else None,
            client=None,
            verdict=outcome.state,
            status=state.status,
            tenant=state.tenant or None,
            details={
                "execution_id": state.execution_id,
                "url": parts._replace(query="", fragment="").geturl(),
                "attempts": outcome.attempts,
                "last_error": outcome.last_error,
            },
        )
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(AuditUnavailable),
            wait=wait_exponential(multiplier=0.1, max=2),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                assert self._auditor is not None
                await self._auditor.record(event)

    async def _deliver(self, url: str, state: ExecutionState) -> WebhookState:
        body = state.model_dump_json().encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            "X-Sandgate-Execution-Id": state.execution_id,
            "User-Agent": f"sandgate/{__version__}",
        }
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff_s, max=MAX_BACKOFF_S),
            retry=retry_if_exception_type(_Failed),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    target = await self._target(url)
                    attempts += 1
                    await self._post(target, body, headers)
        except (_Refused, _Failed) as exc:
            log.warning(
                "webhook.dead", execution_id=state.execution_id, attempts=attempts, error=str(exc)
            )
            return WebhookState(state="dead", attempts=attempts, last_error=str(exc))
        log.info("webhook.delivered", execution_id=state.execution_id, attempts=attempts)
        return WebhookState(state="delivered", attempts=attempts)

    async def _post(self, target: _Target, body: bytes, headers: dict[str, str]) -> None:
        try:
            answer = await self._client.post(
                target.url,
                content=body,
                headers=headers | {"Host": target.host_header},
                extensions={"sni_hostname": target.sni} if target.sni else None,
            )
        except httpx.HTTPError as exc:
            raise _Failed(f"{type(exc).__name__}: {exc}"[:300]) from None
        if not 200 <= answer.status_code < 300:
            raise _Failed(f"the receiver answered {answer.status_code}")

    async def _target(self, url: str) -> _Target:
        """The URL rewritten to a checked address of its host (no second lookup)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Refused("the webhook URL must be http or https with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            host = normalise_host(parts.hostname)
        except HostError as exc:
            raise _Refused(f"bad webhook host: {exc}") from None
        literal = parse_ip(host)
        try:
            addresses = [literal] if literal else await self._resolver.resolve(host, port)
        except ResolveError as exc:
            raise _Failed(str(exc)) from None
        chosen = None
        for address in addresses:
            category = blocked_category(address)
            if category is None or (self._allow_private and category != "cloud metadata"):
                chosen = address
                break
        if chosen is None:
            category = blocked_category(addresses[0])
            raise _Refused(f"the webhook host resolves to a {category} address")
        netloc = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        rewritten = parts._replace(netloc=f"{netloc}:{port}").geturl()
        named = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        default_port = port == (443 if parts.scheme == "https" else 80)
        host_header = named if default_port else f"{named}:{port}"
        return _Target(url=rewritten, host_header=host_header, sni=None if literal else host)
