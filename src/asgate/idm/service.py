"""The OAuth2 authorization server's token operations (RFC 6749; TS 33.122-style northbound tokens)."""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgate.domain.idm import Client
from asgate.idm.keys import KeyRing
from asgate.idm.models import TokenResponse
from asgate.idm.oidc import USER_ONLY_SCOPES
from asgate.idm.passwords import SecretVerifier, hash_concurrency
from asgate.idm.throttle import FailureThrottle, KeyedLocks
from asgate.kernel.problem import Cause
from asgate.store.clients import ClientStore


class OAuthError(Exception):
    """RFC 6749 5.2 error response (``{"error": ..., "error_description": ...}``, plus asgate's
    ``cause`` when there is one)."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
        cause: str | None = None,
    ):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.headers = headers or {}
        self.cause = cause


@dataclass(frozen=True)
class ClientThrottle:
    """Failed client authentications allowed per client id and per source address in ``window``."""

    failures: FailureThrottle
    per_client: int = 10
    per_source: int = 50
    hold: float = 1.0  # seconds a refusal is held before it is sent

    def keys(self, client_id: str, source: str) -> list[tuple[str, int]]:
        return [(f"client:{client_id}", self.per_client), (f"source:{source}", self.per_source)]


class TokenService:
    def __init__(
        self,
        clients: ClientStore,
        keyring: KeyRing,
        *,
        issuer: str,
        audience: str,
        ttl: int,
        clock: Callable[[], float] = time.time,
        throttle: ClientThrottle | None = None,
        verifier: SecretVerifier | None = None,
    ) -> None:
        self._clients = clients
        self._keyring = keyring
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self._clock = clock
        self.throttle = throttle or ClientThrottle(FailureThrottle(60.0))
        self.verifier = verifier or SecretVerifier(hash_concurrency())
        self._attempts = KeyedLocks()

    async def authenticate_client(
        self, client_id: str, client_secret: str, *, basic: bool, source: str = "unknown"
    ) -> Client:
        """RFC 6749 2.3.1; a failure looks the same whether the client exists or not.

        Brute force (issue 8 item 8): a client id or source address with too many recent failures
        is refused with 429 before any hash is computed, unless the secret is one this process
        verified recently for that client (so a flood against a client's id cannot lock the
        client itself out, nor make it wait behind the flood's Argon2 work)."""
        client = await self._remembered(client_id, client_secret)
        if client is not None:
            return client
        keys = self.throttle.keys(client_id, source)
        # One attempt at a time per client id and per address (in this process): each sees the
        # count its predecessors left, so N concurrent guesses cannot all slip under the limit.
        async with self._attempts.hold([key for key, _ in keys]):
            client = await self._remembered(client_id, client_secret)  # verified while we waited
            wait = 0.0 if client is not None else await self.throttle.failures.retry_after(keys)
            if client is None and wait == 0:
                return await self._verify(client_id, client_secret, keys, basic=basic)
        if client is not None:
            return client
        # Refused before the store or a hash is touched; the answer is held a moment (outside the
        # lock) so that a client that ignores Retry-After does not get to try again at once.
        await asyncio.sleep(min(wait, self.throttle.hold))
        raise OAuthError(
            "temporarily_unavailable",
            "too many failed client authentications; try again later",
            429,
            {"Retry-After": str(math.ceil(wait))},
            cause=Cause.TOO_MANY_FAILED_AUTHENTICATIONS,
        )

    async def _remembered(self, client_id: str, client_secret: str) -> Client | None:
        """The client, when this secret is one verified for it recently (no hash computed)."""
        if not self.verifier.remembers(client_id, client_secret):
            return None
        client = await self._clients.get(client_id)
        secret_hash = client.secret_hash if client else None
        if client is not None and self.verifier.recently_verified(client_id, client_secret, secret_hash):
            return client
        return None

    async def _verify(
        self, client_id: str, client_secret: str, keys: list[tuple[str, int]], *, basic: bool
    ) -> Client:
        client = await self._clients.get(client_id)
        secret_hash = client.secret_hash if client else None
        ok = await self.verifier.verify(client_id, secret_hash, client_secret, remember=True)
        if client is None or not ok:
            await self.throttle.failures.failed(keys)
            headers = {"WWW-Authenticate": 'Basic realm="asgate"'} if basic else {}
            raise OAuthError("invalid_client", "client authentication failed", 401, headers)
        await self.throttle.failures.succeeded(keys[0][0])
        return client

    async def client_credentials(self, client: Client, scope: str | None) -> TokenResponse:
        """RFC 6749 4.4: a token for the client itself, limited to the scopes it was provisioned with."""
        granted = self.grant_scopes(client, scope)
        token, expires_in = self.issue(subject=client.client_id, client_id=client.client_id, scopes=granted)
        return TokenResponse(access_token=token, expires_in=expires_in, scope=" ".join(granted))

    @staticmethod
    def grant_scopes(client: Client, scope: str | None) -> list[str]:
        # TS 33.180 B.4: `openid`, the `3gpp:mc:*` and the standard OIDC scopes (profile, email,
        # phone, offline_access) stand for an MC user; they are granted only through the user's
        # login (authorization code), never to the client alone.
        held = [s for s in client.scopes if s not in USER_ONLY_SCOPES]
        requested = scope.split() if scope else held
        user_only = [s for s in requested if s in USER_ONLY_SCOPES]
        if user_only:
            raise OAuthError(
                "invalid_scope", f"scope granted only with a user's login: {' '.join(user_only)}"
            )
        unknown = [s for s in requested if s not in held]
        if unknown:
            raise OAuthError("invalid_scope", f"scope not allowed for this client: {' '.join(unknown)}")
        if not requested:
            raise OAuthError("invalid_scope", "the client has no scope")
        return list(dict.fromkeys(requested))

    def issue(
        self,
        *,
        subject: str,
        client_id: str,
        scopes: list[str],
        extra: dict[str, Any] | None = None,
        ttl: int | None = None,
    ) -> tuple[str, int]:
        """A signed JWT access token (RFC 9068 profile); returns it with its lifetime in seconds."""
        now = int(self._clock())
        ttl = ttl or self.ttl
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": secrets.token_urlsafe(16),
            "client_id": client_id,
            "scope": " ".join(scopes),
            **(extra or {}),
        }
        return self._keyring.sign(claims), ttl

    def sign(self, claims: dict[str, Any], *, typ: str, alg: str) -> str:
        """Sign other JWTs (OIDC ID tokens) with the active key of ``alg``."""
        return self._keyring.sign(claims, typ=typ, alg=alg)
