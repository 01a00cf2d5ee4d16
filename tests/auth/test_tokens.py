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
from asgate.kernel.settings import TrustedIssuer

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
    return jwt.encode(claims(), other, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})


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
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})


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


# ---------------------------------------------------------------- forged and confused tokens


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw(header: Any, payload: Any, signature: bytes = b"\x01" * 64) -> str:
    import json

    def part(value: Any) -> str:
        return value if isinstance(value, str) else _b64(json.dumps(value).encode())

    return f"{part(header)}.{part(payload)}.{_b64(signature)}"


def _header(ring: KeyRing, **overrides: Any) -> dict[str, Any]:
    return {
        k: v for k, v in {"alg": "ES256", "typ": "at+jwt", "kid": ring.active.kid, **overrides}.items() if v
    }


def _signed(ring: KeyRing, body: dict[str, Any], **header: Any) -> str:
    key = ring.active
    return jwt.encode(body, key.private_key, algorithm="ES256", headers={"kid": key.kid, **header})


# Each builds a token that must be refused with a fixed phrase; "EVIL" marks attacker text that
# must never be echoed back (no Python repr, no library message).
FORGED: dict[str, Any] = {
    # wrong key type for the algorithm: an EC key never verifies RSA, PSS, EdDSA or another curve
    "rs256-with-ec-key": lambda r: _raw(_header(r, alg="RS256"), claims()),
    "ps256-with-ec-key": lambda r: _raw(_header(r, alg="PS256"), claims()),
    "es384-with-p256-key": lambda r: _raw(_header(r, alg="ES384"), claims()),
    "eddsa-with-ec-key": lambda r: _raw(_header(r, alg="EdDSA"), claims()),
    "alg-not-a-string": lambda r: _raw(_header(r, alg=["ES256", "EVIL"]), claims()),
    "alg-unknown": lambda r: _raw(_header(r, alg="EVIL256"), claims()),
    # malformed serialization
    "bad-base64-header": lambda r: _raw("eyJ!!!EVIL", claims()),
    "impossible-base64-length": lambda r: _raw("eyJhb", claims()),
    "header-not-json": lambda r: _raw(_b64(b"{EVIL"), claims()),
    "header-not-utf8": lambda r: _raw(_b64(b"\xff\xfe"), claims()),
    "header-an-array": lambda r: _raw(["EVIL"], claims()),
    "payload-a-string": lambda r: _raw(_header(r), "EVIL"),
    "payload-json-string": lambda r: _raw(_header(r), _b64(b'"EVIL"')),
    "payload-a-number": lambda r: _raw(_header(r), _b64(b"1")),
    "payload-deeply-nested": lambda r: _raw(_header(r), _b64(b"[" * 5000 + b"]" * 5000)),
    "four-parts": lambda r: _raw(_header(r), claims()) + ".EVIL",
    "huge": lambda r: _raw(_header(r), claims(pad="EVIL" * 5000)),
    # claims of the wrong JSON type
    "exp-a-string": lambda r: _signed(r, claims(exp="EVIL"), typ="at+jwt"),
    "exp-a-list": lambda r: _signed(r, claims(exp=["EVIL"]), typ="at+jwt"),
    "exp-a-bool": lambda r: _signed(r, claims(exp=True), typ="at+jwt"),
    "exp-infinite": lambda r: _raw(_header(r), _b64(b'{"iss":"http://idm.test","aud":"asgate","exp":1e400}')),
    "exp-huge-int": lambda r: _signed(r, claims(exp=10**300), typ="at+jwt"),
    "iss-a-dict": lambda r: _raw(_header(r), claims(iss={"EVIL": 1})),
    "aud-a-number": lambda r: _signed(r, claims(aud=7), typ="at+jwt"),
    "aud-list-with-number": lambda r: _signed(r, claims(aud=["asgate", 7]), typ="at+jwt"),
    "sub-a-dict": lambda r: _signed(r, claims(sub={"EVIL": 1}), typ="at+jwt"),
    "scope-a-list": lambda r: _signed(r, claims(scope=["EVIL"]), typ="at+jwt"),
    "client-id-a-number": lambda r: _signed(r, claims(client_id=7), typ="at+jwt"),
    "nbf-a-string": lambda r: _signed(r, claims(nbf="EVIL"), typ="at+jwt"),
    # headers we do not understand, or that bring their own key
    "crit": lambda r: _signed(r, claims(), typ="at+jwt", crit=["EVIL"], EVIL=1),
    "jku": lambda r: _signed(r, claims(), typ="at+jwt", jku="http://EVIL.example/jwks"),
    "x5u": lambda r: _signed(r, claims(), typ="at+jwt", x5u="http://EVIL.example/cert"),
    "jwk": lambda r: _signed(r, claims(), typ="at+jwt", jwk={"kty": "EC", "EVIL": 1}),
    "x5c": lambda r: _signed(r, claims(), typ="at+jwt", x5c=["EVIL"]),
    "kid-an-int": lambda r: _raw(_header(r, kid=7), claims()),
    "kid-a-dict": lambda r: _raw(_header(r, kid={"EVIL": 1}), claims()),
    "kid-a-list": lambda r: _raw(_header(r, kid=["EVIL"]), claims()),
    "kid-huge": lambda r: _raw(_header(r, kid="EVIL" * 200), claims()),
    # not an access token: RFC 9068 typ
    "typ-missing": lambda r: _signed(r, claims()),
    "typ-jwt": lambda r: _signed(r, claims(), typ="JWT"),
    "typ-sas-assertion": lambda r: _signed(r, claims(), typ="asgate-sas+jwt"),
    "typ-a-number": lambda r: _raw(_header(r, typ=7), claims()),
    "id-token": lambda r: r.sign(claims(nonce="n", scope=None, azp="as-1"), typ="JWT"),
}


@pytest.mark.parametrize("forge", list(FORGED))
async def test_forged_and_confused_tokens_are_refused_with_a_fixed_phrase(ring: KeyRing, forge: str) -> None:
    with pytest.raises(TokenError) as err:
        await validator(ring).validate(FORGED[forge](ring))
    message = str(err.value)
    assert "EVIL" not in message and "Error" not in message and "<" not in message
    assert message == message.strip() and len(message) < 120


@pytest.mark.parametrize("typ", ["at+jwt", "application/at+jwt", "AT+JWT", "Application/At+JWT"])
async def test_access_token_type_is_compared_as_a_media_type(ring: KeyRing, typ: str) -> None:
    assert (await validator(ring).validate(_signed(ring, claims(), typ=typ))).client_id == "as-1"


def test_the_idm_signs_access_tokens_as_at_jwt(ring: KeyRing) -> None:
    assert jwt.get_unverified_header(ring.sign(claims()))["typ"] == "at+jwt"


def _rsa_jwk(bits: int = 2048, **extra: Any) -> tuple[Any, dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key, {**jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), **extra}


@pytest.fixture
async def jwks_server() -> AsyncIterator[tuple[list[dict[str, Any]], httpx.AsyncClient]]:
    members: list[dict[str, Any]] = []

    async def jwks(_request: Any) -> JSONResponse:
        return JSONResponse({"keys": members})

    app = Starlette(routes=[Route("/jwks", jwks)])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        yield members, http


def _partner(ring: KeyRing, http: httpx.AsyncClient, **config: Any) -> TokenValidator:
    trusted = TrustedIssuer(issuer="https://partner.example", jwks_uri="http://jwks.test/jwks", **config)
    return validator(ring, trusted=[trusted], http=http)


def _partner_token(key: Any, alg: str, kid: str | None = "r1", typ: str | None = "at+jwt", **kw: Any) -> str:
    body = claims(iss="https://partner.example", **kw)
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid, **({"typ": typ} if typ else {})})


async def test_an_rsa_jwk_without_alg_verifies_rsa_algorithms_only(ring: KeyRing, jwks_server: Any) -> None:
    members, http = jwks_server
    key, jwk = _rsa_jwk(kid="r1", use="sig")
    members.append(jwk)
    v = _partner(ring, http)
    for alg in ("RS256", "PS384"):
        assert (await v.validate(_partner_token(key, alg, jti=alg))).issuer == "https://partner.example"
    with pytest.raises(TokenError, match="algorithm not accepted"):
        await v.validate(
            _raw({"alg": "ES256", "kid": "r1", "typ": "at+jwt"}, claims(iss="https://partner.example"))
        )


async def test_a_jwk_alg_and_the_configured_list_narrow_the_algorithms(
    ring: KeyRing, jwks_server: Any
) -> None:
    members, http = jwks_server
    key, jwk = _rsa_jwk(kid="r1", alg="RS256")
    members.append(jwk)
    with pytest.raises(TokenError, match="algorithm not accepted"):
        await _partner(ring, http).validate(_partner_token(key, "PS256"))
    members[0] = {k: v for k, v in jwk.items() if k != "alg"}
    narrowed = _partner(ring, http, algorithms=["PS256"])
    assert (await narrowed.validate(_partner_token(key, "PS256"))).client_id == "as-1"
    with pytest.raises(TokenError, match="algorithm not accepted"):
        await narrowed.validate(_partner_token(key, "RS256"))


async def test_weak_or_unreadable_jwks_members_verify_nothing(ring: KeyRing, jwks_server: Any) -> None:
    members, http = jwks_server
    _, jwk = _rsa_jwk(1024, kid="r1")
    members.extend([jwk, {"kty": "EC", "kid": "r2", "crv": "P-256", "x": "EVIL"}, {"kid": 7}, "EVIL"])
    v = _partner(ring, http)
    # Signed with keys the attacker holds; the kid names the members that must not be usable.
    for kid, key in (("r1", _rsa_jwk()[0]), ("r2", ec.generate_private_key(ec.SECP256R1()))):
        alg = "RS256" if kid == "r1" else "ES256"
        with pytest.raises(TokenError, match="unknown signing key"):
            await v.validate(_partner_token(key, alg, kid=kid))


async def test_an_issuer_may_be_allowed_untyped_access_tokens_but_never_id_tokens(
    ring: KeyRing, jwks_server: Any
) -> None:
    members, http = jwks_server
    key, jwk = _rsa_jwk(kid="r1")
    members.append(jwk)
    strict, lenient = _partner(ring, http), _partner(ring, http, require_at_jwt=False)
    with pytest.raises(TokenError, match="at\\+jwt"):
        await strict.validate(_partner_token(key, "RS256", typ=None))
    assert (await lenient.validate(_partner_token(key, "RS256", typ=None))).client_id == "as-1"
    assert (await lenient.validate(_partner_token(key, "RS256", typ="JWT", jti="2"))).client_id == "as-1"
    for typ, kw in (("JWT", {"nonce": "n", "scope": None}), (None, {"at_hash": "h", "scope": None})):
        with pytest.raises(TokenError, match="not an access token"):
            await lenient.validate(_partner_token(key, "RS256", typ=typ, **kw))
    with pytest.raises(TokenError, match="not an access token"):
        await lenient.validate(_partner_token(key, "RS256", typ="asgate-sas+jwt"))
