"""The SAS's assertion to MC services (seed 10.X.5 step 3): who calls, signed, instead of the MC
user's own token (the claims are listed in :mod:`asgate.client.assertion`).

Signing is not on every request: one assertion per (application, MC user, pool, applied priority)
is reused for ``reuse`` seconds (default 5 s of a ``sas_assertion_ttl`` of 30 s). Measured with
``bench/assertion.py`` on the 2-core development machine (busy): an ES256 signature costs 100-180 µs,
a cache hit 0.5-1.5 µs, so a caller's steady stream of requests costs one signature every 5 s, not
one per request. (An MC service verifying costs 180-800 µs the first time and 3-12 µs for the
same assertion again: ``SasKeys`` remembers verified assertions until they expire.)

The key is the deployment's newest signing key (``data_dir/keys``), published in the IdM's JWKS;
every SAS process, worker and split-off access server already shares that directory. Cached
assertions are dropped when the key set changes (a rotation or a retirement).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from asgate.client.assertion import TYP, pool_audience
from asgate.idm.keys import KeyRing

_MAX_CACHED = 50_000


class AssertionMinter:
    """Signs and caches assertions; ``mint`` is called on the SAS's hot path."""

    def __init__(
        self,
        keyring: KeyRing,
        *,
        issuer: str,
        ttl: int = 30,
        reuse: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < reuse < ttl <= 60:
            raise ValueError("need 0 < reuse < ttl <= 60")
        self.keyring = keyring
        self.issuer = issuer
        self.ttl = ttl
        self.reuse = reuse
        self._clock = clock
        self._cache: dict[tuple[str, str, tuple[str, str], str], tuple[bytes, float]] = {}
        self._generation = -1
        self.signed = 0

    def mint(
        self, app: str, user: str, pool: tuple[str, str], priority: str, mc_ids: Mapping[str, str]
    ) -> bytes:
        """The ``Asgate-Assertion`` value for this caller (``priority`` "" when none applies)."""
        now = self._clock()
        generation = self.keyring.generation
        if generation != self._generation:
            self._cache.clear()  # a rotated or retired key: sign anew
            self._generation = generation
        key = (app, user, pool, priority)
        hit = self._cache.get(key)
        if hit is not None and now < hit[1]:
            return hit[0]
        token = self.keyring.sign(
            assertion_claims(self.issuer, app, user, pool, priority, mc_ids, now, self.ttl), typ=TYP
        )
        if len(self._cache) >= _MAX_CACHED:
            self._cache = {k: v for k, v in self._cache.items() if now < v[1]}
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
        value = token.encode("ascii")
        self._cache[key] = (value, now + self.reuse)
        self.signed += 1
        return value


def assertion_claims(
    issuer: str,
    app: str,
    user: str,
    pool: tuple[str, str],
    priority: str,
    mc_ids: Mapping[str, str],
    now: float,
    ttl: int,
) -> dict[str, Any]:
    issued = int(now)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": pool_audience(*pool),
        "sub": user,
        "client_id": app,
        **mc_ids,
        "iat": issued,
        "exp": issued + ttl,
        "jti": secrets.token_urlsafe(12),
    }
    if priority:
        claims["priority"] = priority
    return claims


def forwards_user_token(patterns: tuple[str, ...], pool: tuple[str, str]) -> bool:
    """Whether setting ``sas_forward_user_token`` lets the MC user's own token through to ``pool``.

    Patterns are ``serviceType/serviceName`` globs (``CM/*``, ``GM/gm-north``); the type is
    compared case-insensitively, as service types are everywhere else.
    """
    service_type, service_name = pool
    for pattern in patterns:
        type_glob, _, name_glob = pattern.partition("/")
        if fnmatchcase(service_type.upper(), type_glob.upper()) and fnmatchcase(service_name, name_glob):
            return True
    return False
