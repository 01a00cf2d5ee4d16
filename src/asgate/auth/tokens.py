"""Bearer token validation used by every API: signature (JWKS), ``iss``, ``aud``, ``exp``, ``nbf``.

Tokens from asgate's own IdM are checked against the local key ring; tokens from configured
external issuers against their JWKS, fetched with httpx, cached, and refetched (at most every
30 s) when a token names an unknown ``kid``. The checks that need no key (shape, types, ``typ``,
algorithm) are in :mod:`asgate.auth.jose`; a key verifies only the algorithms it is for, so
``alg: none``, HS256-signed-with-the-public-key and RS256-with-an-EC-key tokens fail, and every
failure is a :class:`TokenError` with a fixed phrase (a 401), never a library's exception. A
validated token is cached until it expires, so the signature is verified once per token, not once
per request. A token of asgate's own issuer that has been revoked (RFC 7009; see
:mod:`asgate.auth.revocation`) is refused, cached or not.
"""

from __future__ import annotations

import base64
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import jwt

from asgate.auth import jose
from asgate.auth.jose import TokenError as TokenError  # re-exported: the validator's error
from asgate.auth.revocation import Revocations
from asgate.idm.keys import ALGORITHM as SIGNING_ALGORITHM
from asgate.idm.keys import KeyRing
from asgate.kernel.settings import TrustedIssuer

_JWKS_MIN_REFRESH = 30.0
_JWKS_MAX_AGE = 3600.0


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
    own: bool = False  # issued by asgate's own IdM (so revocable there)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


@dataclass
class _JwksCache:
    config: TrustedIssuer
    keys: dict[str, tuple[Any, frozenset[str]]] = field(default_factory=dict)
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
        revocations: Revocations | None = None,
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
        self.revocations = revocations if revocations is not None else Revocations(clock)

    def _revoked(self, principal: Principal) -> bool:
        revocations = self.revocations
        return revocations.any and principal.own and revocations.revoked(principal.claims)

    def cached(self, token: str) -> Principal | None:
        """The principal of a token validated before and still valid, without any I/O (for hot
        paths that can decide synchronously); None means "call :meth:`validate`"."""
        hit = self._cache.get(token)
        if hit is None:
            return None
        principal, seen = hit
        generation = self._keyring.generation if self._keyring is not None else 0
        if principal.expires_at + self._leeway > self._clock() and seen == generation:
            if self.revocations.any and self._revoked(principal):
                return None  # validate() says why
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
                if self._revoked(principal):
                    raise TokenError("the token has been revoked")
                return principal
            del self._cache[token]
        principal = await self._verify(token, now)
        self._cache[token] = (principal, generation)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        if self._revoked(principal):
            raise TokenError("the token has been revoked")
        return principal

    async def _verify(self, token: str, now: float) -> Principal:
        parsed = jose.parse(token)
        iss = parsed.claims.get("iss")
        if not isinstance(iss, str):
            raise TokenError("claim 'iss' is required and must be a string")
        issuer = iss.rstrip("/")
        source = await self._key_for(issuer, parsed.kid)
        jose.check_type(parsed, require_at_jwt=source.require_at_jwt)
        if parsed.alg not in source.algorithms:
            raise TokenError("algorithm not accepted for this signing key")
        exp = jose.check_claims(
            parsed.claims, issuer=issuer, audience=source.audience, now=now, leeway=self._leeway
        )
        _verify_signature(token, source.key, parsed.alg)
        principal = _principal(parsed.claims, issuer, exp)
        if issuer == self._issuer.rstrip("/"):
            principal = replace(principal, own=True)
        return principal

    async def _key_for(self, issuer: str, kid: str | None) -> _Verifier:
        if issuer == self._issuer.rstrip("/") and self._keyring is not None:
            key = self._keyring.get(kid) if kid else None
            if key is None:
                raise TokenError("unknown signing key")
            public = key.private_key.public_key()
            return _Verifier(public, jose.algorithms_for(public, SIGNING_ALGORITHM), self._audience, True)
        cache = self._trusted.get(issuer)
        if cache is None:
            raise TokenError("issuer not trusted")
        audience = cache.config.audience or self._audience
        now = time.monotonic()
        stale = now - cache.fetched_at > _JWKS_MAX_AGE
        if ((kid or "") not in cache.keys and now - cache.fetched_at > _JWKS_MIN_REFRESH) or stale:
            await self._refresh(cache, now)
        if kid is None and len(cache.keys) == 1:
            key, algorithms = next(iter(cache.keys.values()))
        elif kid is not None and kid in cache.keys:
            key, algorithms = cache.keys[kid]
        else:
            raise TokenError("unknown signing key")
        return _Verifier(key, algorithms, audience, cache.config.require_at_jwt)

    async def _refresh(self, cache: _JwksCache, now: float) -> None:
        cache.fetched_at = now
        if self._http is None:
            return
        try:
            response = await self._http.get(cache.config.jwks_uri, timeout=5.0)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError):
            return  # keep the keys we had; an unknown kid then fails as "unknown signing key"
        members = document.get("keys") if isinstance(document, dict) else None
        if isinstance(members, list):
            cache.keys = _jwks_keys(members, cache.config.algorithms)


@dataclass(frozen=True)
class _Verifier:
    """A key that may verify a token, what it may verify, and what the issuer's tokens must be."""

    key: Any
    algorithms: frozenset[str]
    audience: str
    require_at_jwt: bool


def _jwks_keys(members: list[Any], configured: Sequence[str] | None) -> dict[str, tuple[Any, frozenset[str]]]:
    """RFC 7517 5: the signing keys of a JWK set, each with the algorithms it may verify."""
    keys: dict[str, tuple[Any, frozenset[str]]] = {}
    for jwk in members:
        if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
            continue
        kid = jwk.get("kid", "")
        if not isinstance(kid, str):
            continue
        try:
            key = jwt.PyJWK(jwk).key
        except Exception:  # noqa: BLE001, S112 - a member we cannot read is skipped, whatever the library raises
            continue
        algorithms = jose.narrow(jose.algorithms_for(key, jwk.get("alg")), configured)
        if algorithms:
            keys[kid] = (key, algorithms)
    return keys


def _verify_signature(token: str, key: Any, alg: str) -> None:
    """RFC 7515 5.2 with the one algorithm already matched to ``key``."""
    signing_input, _, signature = token.rpartition(".")
    try:
        raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        ok = jwt.get_algorithm_by_name(alg).verify(signing_input.encode("ascii"), key, raw)
    except Exception:  # noqa: BLE001 - the crypto library's errors are not a closed set: any is a refusal
        ok = False
    if not ok:
        raise TokenError("signature verification failed")


def _principal(claims: Mapping[str, Any], issuer: str, exp: float) -> Principal:
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes = frozenset(scope.split())
    else:
        scp = claims.get("scp", [])
        scopes = frozenset(scp if isinstance(scp, list) else scp.split())
    subject = str(claims.get("sub", ""))
    client_id = str(claims.get("client_id") or claims.get("azp") or subject)  # strings (jose.check_claims)
    return Principal(
        client_id=client_id,
        subject=subject,
        scopes=scopes,
        issuer=issuer,
        expires_at=exp,
        claims=claims,
    )
