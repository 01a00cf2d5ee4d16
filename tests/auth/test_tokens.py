"""Token validation: every way a token can be wrong is refused; external issuers work via JWKS."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgate.auth import TokenError, TokenValidator
from asgate.idm.keys import KeyRing
from asgate.settings import TrustedIssuer

ISS, AUD = "http://idm.test", "asgate"


@pytest.fixture
def ring(tmp_path: Path) -> KeyRing:
    keyring = KeyRing(tmp_path / "keys")
    keyring.ensure()
    return keyring


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": ISS,
        "aud": AUD,
        "sub": "as-1",
        "client_id": "as-1",
        "iat": now,
        "exp": now + 300,
        "scope": "a b",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def validator(ring: KeyRing, **kw: Any) -> TokenValidator:
    return TokenValidator(issuer=ISS, audience=AUD, keyring=ring, **kw)


async def test_a_valid_token_gives_the_client_and_its_scopes(ring: KeyRing) -> None:
    principal = await validator(ring).validate(ring.sign(claims()))
    assert (principal.client_id, principal.subject, principal.scopes) == (
        "as-1",
        "as-1",
        frozenset({"a", "b"}),
    )


def _forge_hs256(secret: bytes, kid: str) -> str:
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _unsigned(kid: str) -> str:
    import base64
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{b64(json.dumps(claims()).encode())}."


def _other_key_token(kid: str) -> str:
    other = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(claims(), other, algorithm="ES256", headers={"kid": kid})


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda r: r.sign(claims(exp=int(time.time()) - 120)), "expired"),
        (lambda r: r.sign(claims(nbf=int(time.time()) + 600)), "not yet valid"),
        (lambda r: r.sign(claims(iss="http://evil.test")), "issuer not trusted"),
        (lambda r: r.sign(claims(aud="someone-else")), "audience"),
        (lambda r: r.sign(claims(exp=None)), "exp"),
        (lambda r: _unsigned(r.active.kid), "algorithm not accepted"),
        (
            lambda r: _forge_hs256(
                r.active.private_key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                ),
                r.active.kid,
            ),
            "algorithm not accepted",
        ),
        (lambda r: _other_key_token(r.active.kid), "signature"),
        (lambda r: _other_key_token("no-such-kid"), "unknown signing key"),
        (lambda r: "not.a.jwt", "malformed"),
        (lambda r: "", "malformed"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "no-exp",
        "alg-none",
        "hs256-with-public-key",
        "bad-signature",
        "unknown-kid",
        "garbage",
        "empty",
    ],
)
async def test_bad_tokens_are_refused_with_a_reason(ring: KeyRing, make: Any, reason: str) -> None:
    with pytest.raises(TokenError) as err:
        await validator(ring).validate(make(ring))
    assert reason.lower() in str(err.value).lower()


async def test_tokens_signed_before_a_rotation_stay_valid_until_their_key_is_retired(ring: KeyRing) -> None:
    old_token = ring.sign(claims())
    old_kid = ring.active.kid
    ring.rotate()
    v = validator(ring)
    assert (await v.validate(old_token)).client_id == "as-1"
    assert jwt.get_unverified_header(ring.sign(claims()))["kid"] != old_kid
    ring.retire(old_kid)
    with pytest.raises(TokenError, match="unknown signing key"):
        await v.validate(old_token)  # also when it was cached


def _jwks_app(keys: list[ec.EllipticCurvePrivateKey], hits: list[int]) -> Starlette:
    async def jwks(_request: Any) -> JSONResponse:
        hits.append(1)
        out = []
        for i, key in enumerate(keys):
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
            out.append({**jwk, "kid": f"k{i}", "use": "sig", "alg": "ES256"})
        return JSONResponse({"keys": out})

    return Starlette(routes=[Route("/jwks", jwks)])


@pytest.fixture
async def external(
    ring: KeyRing,
) -> AsyncIterator[tuple[TokenValidator, list[ec.EllipticCurvePrivateKey], list[int]]]:
    keys = [ec.generate_private_key(ec.SECP256R1())]
    hits: list[int] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_jwks_app(keys, hits))) as http:
        trusted = [
            TrustedIssuer(
                issuer="https://login.partner.example", jwks_uri="http://jwks.test/jwks", audience="mc-gw"
            )
        ]
        yield validator(ring, trusted=trusted, http=http), keys, hits


def _external_token(key: ec.EllipticCurvePrivateKey, kid: str, **kw: Any) -> str:
    fields = {"iss": "https://login.partner.example", "aud": "mc-gw", "scp": ["mcx-registry"], "scope": None}
    body = claims(**{**fields, "client_id": None, "azp": "console-7", **kw})
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": kid})


async def test_an_external_issuer_is_trusted_through_its_jwks(external: Any) -> None:
    v, keys, hits = external
    principal = await v.validate(_external_token(keys[0], "k0"))
    assert principal.client_id == "console-7" and principal.scopes == frozenset({"mcx-registry"})
    assert principal.issuer == "https://login.partner.example"
    await v.validate(_external_token(keys[0], "k0", jti="2"))
    assert len(hits) == 1  # the JWKS is cached


async def test_an_unknown_kid_makes_the_validator_refetch_the_jwks_once(
    external: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    v, keys, hits = external
    await v.validate(_external_token(keys[0], "k0"))
    keys.append(ec.generate_private_key(ec.SECP256R1()))  # the issuer rotates
    monkeypatch.setattr("asgate.auth.tokens._JWKS_MIN_REFRESH", 0.0)
    assert (await v.validate(_external_token(keys[1], "k1"))).client_id == "console-7"
    assert len(hits) == 2
    with pytest.raises(TokenError, match="(?i)audience"):
        await v.validate(_external_token(keys[1], "k1", aud="asgate-other"))


async def test_validated_tokens_are_cached_until_they_expire(ring: KeyRing) -> None:
    now = [time.time()]
    v = validator(ring, clock=lambda: now[0], leeway=0)
    token = ring.sign(claims(exp=int(now[0]) + 60))
    first = await v.validate(token)
    assert await v.validate(token) is first
    now[0] += 61
    with pytest.raises(TokenError, match="expired"):
        await v.validate(token)
