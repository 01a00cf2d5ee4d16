"""What a bearer token must be before and around its signature check: pure functions, no I/O.

A token is parsed here, not by the JOSE library, so that every malformed input (bad base64, a
header that is not a JSON object, a claim of the wrong JSON type, a 1 MB token) becomes a
:class:`TokenError` with a fixed phrase, never an exception from a library or a 500. The
rules (RFC 8725, JWT Best Current Practices):

- only asymmetric algorithms, and only the ones the verifying key is for (RFC 8725 3.1, 3.2:
  an EC P-256 key verifies ES256 and nothing else; an RSA key RS*/PS*; a JWK's ``alg`` narrows);
- no ``crit`` extensions (RFC 7515 4.1.11: we understand none) and no key carried or pointed to
  by the token itself (``jwk``, ``jku``, ``x5u``, ``x5c``: keys come from our key ring or the
  issuer's configured JWKS, never from the token);
- access tokens are typed ``at+jwt`` (RFC 9068 2.1, RFC 8725 3.11), so an ID token or another
  signed JWT of the same issuer (the SAS's assertions) is never taken for an access token;
- registered claims have their RFC 7519 4.1 types: ``iss`` a string, ``aud`` a string or a list
  of strings, ``exp``/``nbf``/``iat`` finite NumericDates.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

ASYMMETRIC_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
# RFC 7518 3.4: the curve fixes the algorithm.
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
MIN_RSA_BITS = 2048  # RFC 7518 3.3
MAX_TOKEN_LENGTH = 16 * 1024  # a real access token is a few hundred bytes to a few kilobytes
MAX_KID_LENGTH = 256
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - RFC 9068 2.1, a media type
# Header members that carry or point at a verification key (RFC 7515 4.1.2-4.1.6).
KEY_BEARING_HEADERS = frozenset({"jku", "jwk", "x5u", "x5c"})
# Upper bound for NumericDates: year 33658; beyond it a float would lose whole seconds.
_MAX_NUMERIC_DATE = 1e12
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_SIG = re.compile(r"[A-Za-z0-9_-]*")


class TokenError(Exception):
    """The token is not acceptable; the message is a fixed phrase, safe to show the caller."""


@dataclass(frozen=True)
class Unverified:
    """A token split and decoded, nothing checked against a key yet."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    alg: str
    kid: str | None
    typ: str | None  # RFC 7515 4.1.9, lower-cased, without "application/"


def _b64json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise TokenError(f"malformed token: the {what} is not base64url-encoded JSON") from None
    if not isinstance(value, dict):
        raise TokenError(f"malformed token: the {what} is not a JSON object")
    return value


def parse(token: str) -> Unverified:
    """Split a JWS compact serialization (RFC 7515 7.1) and check its header."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("the token is too large")
    parts = token.split(".")
    # The signature may be empty here; "alg: none" is then refused by name, not as garbage.
    if len(parts) != 3 or not all(_SEGMENT.fullmatch(p) for p in parts[:2]) or not _SIG.fullmatch(parts[2]):
        raise TokenError("malformed token: not a signed JWT (three base64url parts)")
    header = _b64json(parts[0], "header")
    claims = _b64json(parts[1], "payload")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ASYMMETRIC_ALGORITHMS:
        raise TokenError("algorithm not accepted")
    if "crit" in header:
        raise TokenError("critical header parameters are not supported")
    if KEY_BEARING_HEADERS & header.keys():
        raise TokenError("a token may not carry or point to its own key (jwk, jku, x5u, x5c)")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID_LENGTH):
        raise TokenError("the key id (kid) is not a short string")
    typ = header.get("typ")
    if typ is not None and not isinstance(typ, str):
        raise TokenError("the token type (typ) is not a string")
    return Unverified(header, claims, alg, kid, _media_type(typ) if typ is not None else None)


def _media_type(typ: str) -> str:
    """RFC 7515 4.1.9: compared case-insensitively; "application/" may be left out."""
    typ = typ.lower()
    return typ.removeprefix("application/")


def looks_like_id_token(claims: Mapping[str, Any]) -> bool:
    """An OIDC ID token (OIDC Core 2): ``nonce`` or ``at_hash`` and no scope."""
    return ("nonce" in claims or "at_hash" in claims) and "scope" not in claims and "scp" not in claims


def check_type(token: Unverified, *, require_at_jwt: bool) -> None:
    """RFC 9068 2.1 / 4: an access token is ``typ: at+jwt``. An issuer configured not to require
    it may send untyped tokens or ``typ: JWT``, but never another explicit type nor an ID token."""
    if token.typ == ACCESS_TOKEN_TYPE:
        return
    if require_at_jwt:
        raise TokenError("not an access token: the token type (typ) must be at+jwt")
    if token.typ not in (None, "jwt") or looks_like_id_token(token.claims):
        raise TokenError("not an access token: the token type (typ) must be at+jwt")


def _numeric_date(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise TokenError(f"claim '{name}' is required")
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 <= value < _MAX_NUMERIC_DATE
    ):
        raise TokenError(f"claim '{name}' is not a NumericDate")
    return float(value)


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def check_claims(
    claims: Mapping[str, Any], *, issuer: str, audience: str, now: float, leeway: float
) -> float:
    """RFC 7519 4.1 / RFC 9068 4: types, issuer, audience and validity period; returns ``exp``."""
    iss = claims.get("iss")
    if not isinstance(iss, str):
        raise TokenError("claim 'iss' is required and must be a string")
    if iss.rstrip("/") != issuer.rstrip("/"):
        raise TokenError("issuer not trusted")
    audiences = _strings(claims.get("aud"))
    if audiences is None:
        raise TokenError("claim 'aud' is required and must be a string or a list of strings")
    if audience not in audiences:
        raise TokenError("the token is for another audience")
    exp = _numeric_date(claims, "exp", required=True)
    nbf = _numeric_date(claims, "nbf", required=False)
    _numeric_date(claims, "iat", required=False)
    for name in ("sub", "client_id", "azp", "scope", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise TokenError(f"claim '{name}' must be a string")
    if "scp" in claims and _strings(claims["scp"]) is None and not isinstance(claims["scp"], str):
        raise TokenError("claim 'scp' must be a string or a list of strings")
    assert exp is not None
    if exp + leeway <= now:
        raise TokenError("the token has expired")
    if nbf is not None and nbf - leeway > now:
        raise TokenError("the token is not yet valid (nbf)")
    return exp


def algorithms_for(key: Any, declared: Any = None) -> frozenset[str]:
    """The algorithms ``key`` may verify (RFC 8725 3.1); a JWK's ``alg`` (``declared``) narrows
    them to one. An unusable key (small RSA, an unknown curve) verifies nothing."""
    usable: frozenset[str] = frozenset()
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = EC_ALGORITHMS.get(key.curve.name)
        usable = frozenset({alg}) if alg else frozenset()
    elif isinstance(key, rsa.RSAPublicKey):
        usable = RSA_ALGORITHMS if key.key_size >= MIN_RSA_BITS else frozenset()
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        usable = frozenset({"EdDSA"})
    if declared is not None:
        usable = usable & {declared} if isinstance(declared, str) else frozenset()
    return usable


def narrow(algorithms: frozenset[str], configured: Iterable[str] | None) -> frozenset[str]:
    """An operator's list of algorithms for an issuer narrows what its keys allow."""
    return algorithms if configured is None else algorithms & frozenset(configured)
