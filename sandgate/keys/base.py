"""The key store's contract, and the public record of a key.

A key is `sg_` + 43 URL-safe characters (256 random bits), so a fast hash is as good as a slow
one here: nobody can brute-force the preimage. Every key has an expiry (its policy's
`keys.expiry_days`, 90 days by default); rotating a key issues a successor with the same name,
tenant and scopes and cuts the old one's life to a grace period. `last_used_at` is noted in
memory on each use and written in one batch every few seconds (`flush_last_used`), so a busy
key costs no write per request.
"""

from __future__ import annotations

import abc
import hashlib
import secrets
import threading
import time
from enum import StrEnum

from pydantic import BaseModel

__all__ = ["DEFAULT_LIFETIME_S", "DEFAULT_SCOPES", "KEY_PREFIX", "ApiKey", "KeyStore", "Scope"]

KEY_PREFIX = "sg_"
ENV_KEY_NAME = "env"
DEFAULT_LIFETIME_S = 90 * 86_400


class Scope(StrEnum):
    """What a key may do; `admin` implies every other scope."""

    EXECUTE = "execute"
    SCREEN = "screen"
    AUDIT_READ = "audit:read"
    POLICY_ADMIN = "policy:admin"
    ADMIN = "admin"


DEFAULT_SCOPES = (Scope.EXECUTE, Scope.SCREEN)


class ApiKey(BaseModel):
    """A key's public record (everything but the secret)."""

    id: str
    name: str
    tenant: str
    scopes: list[Scope]
    created_at: float
    revoked_at: float | None = None
    expires_at: float | None = None
    last_used_at: float | None = None
    rotated_to: str | None = None

    def allows(self, scope: Scope) -> bool:
        """True when the key holds `scope` or `admin`."""
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def expired(self, now: float) -> bool:
        """True once the key's expiry has passed."""
        return self.expires_at is not None and now >= self.expires_at


def digest(secret: str) -> str:
    """What is stored of a key: its SHA-256."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """A fresh key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyStore(abc.ABC):
    """Hashed keys with their expiry, rotation and last use; safe across threads.

    `lookup` answers expired keys too (the caller says why it refuses them); revoked keys are
    never answered. `touch` only notes a use in memory; `flush_last_used` writes the notes.
    """

    def __init__(self) -> None:
        self._used: dict[str, float] = {}
        self._used_lock = threading.Lock()

    @abc.abstractmethod
    def create(
        self,
        name: str,
        *,
        tenant: str = "default",
        scopes: tuple[Scope, ...] = DEFAULT_SCOPES,
        expires_at: float | None = None,
    ) -> tuple[str, ApiKey]:
        """Make a new key (expiring at `expires_at`, default in 90 days); returns the secret
        (show it once) and its record."""

    @abc.abstractmethod
    def seed(self, secret: str, expires_at: float | None = None) -> None:
        """Install `secret` (SANDGATE_API_KEY) as the admin key `env`, replacing an old one;
        an unchanged one keeps its expiry (a new secret is how it is rotated)."""

    @abc.abstractmethod
    def lookup(self, secret: str) -> ApiKey | None:
        """The unrevoked key whose secret this is (expired or not), or None."""

    @abc.abstractmethod
    def get(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not, or None."""

    @abc.abstractmethod
    def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""

    @abc.abstractmethod
    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key by id; its record, or None when no live key has that id."""

    @abc.abstractmethod
    def rotate(
        self, key_id: str, *, expires_at: float, grace_until: float
    ) -> tuple[str, ApiKey, ApiKey] | None:
        """Issue a successor of a live key (same name, tenant, scopes; expiring at
        `expires_at`) and let the old one live until `grace_until` at most, in one
        transaction. Returns the new secret, the new and the old record; None if no live key
        has that id."""

    @abc.abstractmethod
    def _write_last_used(self, used: dict[str, float]) -> None:
        """Store the noted last uses (key id -> time), never moving one backwards."""

    @abc.abstractmethod
    def close(self) -> None:
        """Flush the noted uses and release the store."""

    def touch(self, key_id: str, at: float | None = None) -> None:
        """Note a use of the key (written by the next `flush_last_used`)."""
        with self._used_lock:
            self._used[key_id] = at if at is not None else time.time()

    def flush_last_used(self) -> int:
        """Write the uses noted since the last flush, in one batch; how many keys."""
        with self._used_lock:
            used, self._used = self._used, {}
        if used:
            self._write_last_used(used)
        return len(used)
