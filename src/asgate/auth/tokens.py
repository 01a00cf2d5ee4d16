"""Bearer token validation used by every API: signature (JWKS), ``iss``, ``aud``, ``exp``, ``nbf``.

Tokens from asgate's own IdM are checked against the local key ring; tokens from configured
external issuers against their JWKS, fetched with httpx, cached, and refetched (at most every
30 s) when a token names an unknown ``kid``. Only asymmetric algorithms are accepted, so
``alg: none`` and HS256-signed-with-the-public-key tokens fail. A validated token is cached until
it expires, so the signature is verified once per token, not once per request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from asgate.idm.keys import KeyRing
from asgate.settings import TrustedIssuer

ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
_JWKS_MIN_REFRESH = 30.0
_JWKS_MAX_AGE = 3600.0


class TokenError(Exception):
    """The token is not acceptable; the message says why (safe to show the caller)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the OAuth2 client, the token subject (an MC user for user tokens) and scopes."""

    client_id: str
    subject: str
    scopes: frozenset[str]
    issuer: str
    expires_at: float
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)
    via: str = "token"  # or "mtls"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass
class _JwksCache:
    config: TrustedIssuer
    keys: dict[str, Any] = field(default_factory=dict)
    fetched_at: float = float("-inf")


class TokenValidator:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        keyring: KeyRing | None,
        trusted: Sequence[TrustedIssuer] = (),
        http: httpx.AsyncClient | None = None,
        leeway: int = 30,
        cache_size: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuer = issuer
        self._audience = audience
        self._keyring = keyring
        self._trusted = {t.issuer.rstrip("/"): _JwksCache(t) for t in trusted}
        self._http = http
        self._leeway = leeway
        self._cache: OrderedDict[str, tuple[Principal, int]] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock

    def cached(self, token: str) -> Principal | None:
        """The principal of a token validated before and still valid, without any I/O (for hot
        paths that can decide synchronously); None means "call :meth:`validate`"."""
        hit = self._cache.get(token)
        if hit is None:
            return None
        principal, seen = hit
        generation = self._keyring.generation if self._keyring is not None else 0
        if principal.expires_at + self._leeway > self._clock() and seen == generation:
            return principal
        return None

    async def validate(self, token: str) -> Principal:
        now = self._clock()
        generation = self._keyring.generation if self._keyring is not None else 0
        cached = self._cache.get(token)
        if cached is not None:
            principal, seen = cached
            # A retired signing key invalidates the tokens it signed, cached or not.
            if principal.expires_at + self._leeway > now and seen == generation:
                return principal
            del self._cache[token]
        principal = await self._verify(token, now)
        self._cache[token] = (principal, generation)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    async def _verify(self, token: str, now: float) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise TokenError(f"malformed token: {exc}") from None
        alg = header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise TokenError(f"algorithm not accepted: {alg}")
        issuer = str(unverified.get("iss", "")).rstrip("/")
        key, audience = await self._key_for(issuer, header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=unverified.get("iss"),
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc) or type(exc).__name__) from None
        # PyJWT checks these against its own clock; ours may be injected (tests, replays).
        if claims["exp"] + self._leeway <= now:
            raise TokenError("Signature has expired")
        if "nbf" in claims and claims["nbf"] - self._leeway > now:
            raise TokenError("The token is not yet valid (nbf)")
        return _principal(claims, issuer)

    async def _key_for(self, issuer: str, kid: Any) -> tuple[Any, str]:
        if issuer == self._issuer.rstrip("/") and self._keyring is not None:
            key = self._keyring.get(str(kid)) if kid else None
            if key is None:
                raise TokenError("unknown signing key")
            return key.private_key.public_key(), self._audience
        cache = self._trusted.get(issuer)
        if cache is None:
            raise TokenError("issuer not trusted")
        audience = cache.config.audience or self._audience
        now = time.monotonic()
        stale = now - cache.fetched_at > _JWKS_MAX_AGE
        if (kid not in cache.keys and now - cache.fetched_at > _JWKS_MIN_REFRESH) or stale:
            await self._refresh(cache, now)
        if kid is None and len(cache.keys) == 1:
            return next(iter(cache.keys.values())), audience
        if kid not in cache.keys:
            raise TokenError("unknown signing key")
        return cache.keys[kid], audience

    async def _refresh(self, cache: _JwksCache, now: float) -> None:
        cache.fetched_at = now
        if self._http is None:
            return
        try:
            response = await self._http.get(cache.config.jwks_uri, timeout=5.0)
            response.raise_for_status()
            jwks = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError):
            return  # keep the keys we had; an unknown kid then fails as "unknown signing key"
        cache.keys = {k.key_id or "": k.key for k in jwks.keys if k.public_key_use in (None, "sig")}


def _principal(claims: dict[str, Any], issuer: str) -> Principal:
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes = frozenset(scope.split())
    else:
        scp = claims.get("scp", [])
        scopes = frozenset(scp if isinstance(scp, list) else str(scp).split())
    subject = str(claims.get("sub", ""))
    client_id = str(claims.get("client_id") or claims.get("azp") or subject)
    return Principal(
        client_id=client_id,
        subject=subject,
        scopes=scopes,
        issuer=issuer,
        expires_at=float(claims["exp"]),
        claims=claims,
    )
