"""Tokens asgate's own roles use towards each other (e.g. the registry's CSC-15 pushes to the service
access server), signed with the local key ring: no client secret to provision or leak."""

from __future__ import annotations

import secrets
import time

import httpx

from asgate.idm.keys import KeyRing


class InternalTokens:
    """A token source (see ``asgate.client._http.TokenSource``) minting short-lived tokens for one
    internal subject and scope; the access server validates them like any local token."""

    def __init__(
        self, keyring: KeyRing, *, issuer: str, audience: str, subject: str, scope: str, ttl: int = 300
    ) -> None:
        self._keyring = keyring
        self._claims = {"iss": issuer, "aud": audience, "sub": subject, "client_id": subject, "scope": scope}
        self._ttl = ttl
        self._token: str | None = None
        self._expires = 0.0

    async def token(self, http: httpx.AsyncClient) -> str:
        now = time.time()
        if self._token is None or now > self._expires - 60:
            issued = int(now)
            claims = {
                **self._claims,
                "iat": issued,
                "nbf": issued,
                "exp": issued + self._ttl,
                "jti": secrets.token_urlsafe(12),
            }
            self._token = self._keyring.sign(claims)
            self._expires = issued + self._ttl
        return self._token
