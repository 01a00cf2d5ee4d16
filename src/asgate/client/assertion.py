"""What an MC service trusts about a request the service access server forwards (seed 10.X.5 step 3).

The SAS does not forward the MC user's access token (a compromised instance would collect users'
tokens); it asserts who is calling in ``Asgate-Assertion``: a short-lived JWT it signs with a key of
the asgate deployment, published in the IdM's JWKS (``{issuer}/oauth2/jwks``).

=========  ==============================================================================
header     ``typ: asgate-sas+jwt`` (never ``at+jwt``: an assertion is no access token), ``kid``
``iss``    the SAS: ``{issuer}/sas`` by default (setting ``sas_assertion_issuer``)
``aud``    the pool the request goes to: ``SERVICE_TYPE/serviceName`` (``GM/gm-north``)
``sub``    the MC service ID the request is made as (the one the user's grant matched)
``client_id``  the external application
``mcptt_id``, ``mcvideo_id``, ``mcdata_id``  the MC service IDs the user's token carries
``priority``   the applied ``Resource-Priority`` (``mcpttp.9``), absent without one
``iat``, ``exp``, ``jti``  at most 60 s of validity; the SAS reuses one assertion for a few
           seconds per (application, user, pool, priority), so ``jti`` names the assertion, not
           a request
=========  ==============================================================================

:func:`verify_sas_assertion` checks all of that; :class:`~asgate.client.ServiceAgent` offers it
with everything filled in (``await agent.verify_sas_assertion(request)``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt

from asgate.kernel.claims import MC_ID_CLAIMS
from asgate.kernel.problem import ProblemError

HEADER = "asgate-assertion"
TYP = "asgate-sas+jwt"
# RFC 7518 3.1: the asymmetric algorithms; "none" and HMAC (a public key used as a secret) never.
_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
CAUSE = "INVALID_SAS_ASSERTION"
_MAX_VERIFIED = 10_000


def pool_audience(service_type: str, service_name: str) -> str:
    """The ``aud`` of the assertions for a pool: ``GM/gm-north``."""
    return f"{service_type}/{service_name}"


class SasAssertionError(ProblemError):
    """The request carries no valid SAS assertion: answer it 401 (the error renders as
    ``application/problem+json`` with cause ``INVALID_SAS_ASSERTION``); the detail says why."""

    def __init__(self, detail: str) -> None:
        super().__init__(401, CAUSE, detail)


@dataclass(frozen=True)
class SasCaller:
    """Who calls, as the SAS asserts it."""

    mc_service_id: str  # ``sub``: the MC user the request is made as
    client_id: str  # the external application
    priority: str | None  # the applied Resource-Priority, e.g. "mcpttp.9"
    mc_service_ids: Mapping[str, str] = field(default_factory=dict)  # claim name -> MC service ID
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)


class SasKeys:
    """The JWKS that signs the SAS's assertions: fetched from ``jwks_uri`` when first needed,
    cached for ``max_age`` s, and fetched again for an unknown ``kid`` (a key rotation) at most
    every ``min_refresh`` s, so a flood of made-up ``kid`` values cannot make the service hammer
    the IdM. ``jwks`` pins a key set instead (no fetching)."""

    def __init__(
        self,
        jwks_uri: str | None = None,
        *,
        jwks: Mapping[str, Any] | None = None,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        min_refresh: float = 30.0,
        max_age: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if (jwks_uri is None) == (jwks is None):
            raise ValueError("give exactly one of jwks_uri and jwks")
        self.jwks_uri = jwks_uri
        self._own_http = http is None and jwks_uri is not None
        self._http = http if http is not None or jwks_uri is None else httpx.AsyncClient(transport=transport)
        self._min_refresh = min_refresh
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = _parse(jwks) if jwks is not None else {}
        self._fetched = float("-inf")
        self._fetching: asyncio.Future[None] | None = None
        self.fetches = 0
        # Assertions already verified (the SAS reuses one for a few seconds): (token, iss, aud) ->
        # claims; exp is still checked on every use. Cleared when the key set changes.
        self._verified: dict[tuple[str, str, str], dict[str, Any]] = {}

    async def get(self, kid: str) -> jwt.PyJWK | None:
        if self.jwks_uri is not None:
            if self._fetching is not None:  # requests arriving during a fetch wait for it
                await asyncio.shield(self._fetching)
            now = self._clock()
            age = now - self._fetched
            if age > self._max_age or (kid not in self._keys and age > self._min_refresh):
                self._fetched = now
                self._fetching = asyncio.ensure_future(self._fetch())
                try:
                    await asyncio.shield(self._fetching)
                finally:
                    self._fetching = None
        return self._keys.get(kid)

    async def _fetch(self) -> None:
        assert self._http is not None and self.jwks_uri is not None
        self.fetches += 1
        try:
            response = await self._http.get(self.jwks_uri, timeout=5.0)
            response.raise_for_status()
            keys = _parse(response.json())
            if keys.keys() != self._keys.keys():
                self._verified.clear()
            self._keys = keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError):
            return  # keep the keys we had; an unknown kid is then refused

    def verified(self, token: str, issuer: str, audience: str) -> dict[str, Any] | None:
        return self._verified.get((token, issuer, audience))

    def remember(self, token: str, issuer: str, audience: str, claims: dict[str, Any]) -> None:
        if len(self._verified) >= _MAX_VERIFIED:
            self._verified.clear()
        self._verified[(token, issuer, audience)] = claims

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()


def _parse(jwks: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    keys = {}
    for data in jwks.get("keys", []):
        if not isinstance(data, dict) or data.get("use", "sig") != "sig" or not data.get("kid"):
            continue
        try:
            key = jwt.PyJWK.from_dict(data)
        except jwt.PyJWTError:
            continue
        if key.algorithm_name in _ALGORITHMS:
            keys[str(data["kid"])] = key
    return keys


async def verify_sas_assertion(
    request_or_headers: Any,
    keys: SasKeys,
    *,
    issuer: str,
    audience: str,
    leeway: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> SasCaller:
    """Check the ``Asgate-Assertion`` of a request the SAS forwarded and return the caller.

    ``request_or_headers``: a Starlette/ASGI request or WebSocket (anything with ``.headers``),
    a mapping of headers, or ASGI-style ``(name, value)`` pairs. ``audience``: this service's pool,
    ``pool_audience("GM", "gm-north")``. Checked: the signature with a key of ``keys`` (only
    asymmetric algorithms), ``typ`` (``asgate-sas+jwt``), ``iss``, ``aud``, ``exp`` (and ``iat``
    not in the future), ``sub`` and ``client_id`` present. Raises :class:`SasAssertionError`.
    """
    token = _header(request_or_headers)
    if not token:
        raise SasAssertionError("no Asgate-Assertion: requests must come through the service access server")
    known = keys.verified(token, issuer, audience)
    if known is not None:
        return _caller(known, clock(), leeway)
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise SasAssertionError("the SAS assertion is not a JWT") from None
    if header.get("typ") != TYP:
        raise SasAssertionError(f"the SAS assertion must have typ {TYP}")
    kid = header.get("kid")
    key = await keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise SasAssertionError("the SAS assertion is signed with an unknown key")
    if header.get("alg") != key.algorithm_name:
        raise SasAssertionError("the SAS assertion's algorithm does not match its key")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            audience=audience,
            issuer=issuer,
            options={
                "require": ["iss", "aud", "exp", "iat", "sub"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidAudienceError:
        raise SasAssertionError("the SAS assertion is for another service pool") from None
    except jwt.InvalidIssuerError:
        raise SasAssertionError("the SAS assertion has another issuer") from None
    except jwt.PyJWTError:
        raise SasAssertionError("the SAS assertion is invalid (signature or claims)") from None
    caller = _caller(claims, clock(), leeway)
    keys.remember(token, issuer, audience, claims)
    return caller


def _caller(claims: dict[str, Any], now: float, leeway: float) -> SasCaller:
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise SasAssertionError("the SAS assertion's exp and iat must be numbers")
    if exp + leeway <= now:
        raise SasAssertionError("the SAS assertion has expired")
    if iat - leeway > now:
        raise SasAssertionError("the SAS assertion is issued in the future")
    subject, client_id, priority = claims.get("sub"), claims.get("client_id"), claims.get("priority")
    if not isinstance(subject, str) or not subject or not isinstance(client_id, str) or not client_id:
        raise SasAssertionError("the SAS assertion names no MC user or no application")
    ids = {c: claims[c] for c in MC_ID_CLAIMS if isinstance(claims.get(c), str)}
    return SasCaller(subject, client_id, priority if isinstance(priority, str) else None, ids, claims)


def _header(source: Any) -> str | None:
    headers = getattr(source, "headers", source)
    if isinstance(headers, Mapping):
        value = headers.get(HEADER)
        if value is None:  # a plain dict is case-sensitive; Starlette's and httpx's headers are not
            value = next((v for k, v in headers.items() if str(k).lower() == HEADER), None)
        return _text(value)
    if isinstance(headers, Sequence):
        for name, value in headers:
            if _text(name).lower() == HEADER:  # type: ignore[union-attr]
                return _text(value)
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None
