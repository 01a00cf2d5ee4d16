"""POST /oauth2/token (RFC 6749 client credentials), JWKS and discovery, through the real app."""

from __future__ import annotations

import base64

import httpx
import jwt
import pytest

from asgate.system.runtime import Runtime
from tests.conftest import Provision


@pytest.fixture
async def as1(provision: Provision) -> None:
    await provision("as-1", scopes=("msgs-asregistration", "msgs-admin"), as_svc_ids=("AS1",))


async def _token(http: httpx.AsyncClient, **kw: object) -> httpx.Response:
    return await http.post("/oauth2/token", **kw)  # type: ignore[arg-type]


@pytest.mark.usefixtures("as1")
async def test_client_secret_basic_gives_a_signed_token_with_the_granted_scope(
    http: httpx.AsyncClient, rt: Runtime
) -> None:
    response = await _token(
        http,
        data={"grant_type": "client_credentials", "scope": "msgs-asregistration"},
        auth=("as-1", "as-1-secret"),
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == rt.settings.token_ttl
    assert body["scope"] == "msgs-asregistration"
    jwks = (await http.get("/oauth2/jwks")).json()
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt"
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(body["access_token"], jwt.PyJWK(key).key, algorithms=["ES256"], audience="asgate")
    assert claims["iss"] == rt.settings.token_issuer
    assert claims["sub"] == claims["client_id"] == "as-1"
    assert claims["exp"] - claims["iat"] == rt.settings.token_ttl


@pytest.mark.usefixtures("as1")
async def test_client_secret_post_and_default_scopes(http: httpx.AsyncClient) -> None:
    response = await _token(
        http, data={"grant_type": "client_credentials", "client_id": "as-1", "client_secret": "as-1-secret"}
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "msgs-asregistration msgs-admin"


@pytest.mark.usefixtures("as1")
@pytest.mark.parametrize(
    ("kwargs", "status", "error"),
    [
        ({"data": {"grant_type": "client_credentials"}, "auth": ("as-1", "wrong")}, 401, "invalid_client"),
        (
            {"data": {"grant_type": "client_credentials"}, "auth": ("nobody", "as-1-secret")},
            401,
            "invalid_client",
        ),
        ({"data": {"grant_type": "client_credentials"}}, 401, "invalid_client"),
        (
            {
                "data": {"grant_type": "client_credentials", "client_secret": "as-1-secret"},
                "auth": ("as-1", "as-1-secret"),
            },
            400,
            "invalid_request",
        ),
        (
            {
                "data": {"grant_type": "client_credentials", "scope": "mcx-registry"},
                "auth": ("as-1", "as-1-secret"),
            },
            400,
            "invalid_scope",
        ),
        (
            {"data": {"grant_type": "password"}, "auth": ("as-1", "as-1-secret")},
            400,
            "unsupported_grant_type",
        ),
        (
            {"json": {"grant_type": "client_credentials"}, "auth": ("as-1", "as-1-secret")},
            400,
            "invalid_request",
        ),
        (
            {
                "content": b"grant_type=client_credentials&grant_type=x",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
                "auth": ("as-1", "as-1-secret"),
            },
            400,
            "invalid_request",
        ),
        (
            {"data": {"grant_type": "client_credentials"}, "headers": {"authorization": "Basic !!!"}},
            401,
            "invalid_client",
        ),
    ],
    ids=[
        "wrong-secret",
        "unknown-client",
        "no-auth",
        "two-auth-methods",
        "scope-not-allowed",
        "unsupported-grant",
        "json-body",
        "repeated-param",
        "bad-basic",
    ],
)
async def test_token_errors_follow_rfc6749(
    http: httpx.AsyncClient, kwargs: dict[str, object], status: int, error: str
) -> None:
    response = await _token(http, **kwargs)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"
    assert "access_token" not in response.json()


@pytest.mark.usefixtures("as1")
async def test_wrong_and_unknown_clients_are_indistinguishable(http: httpx.AsyncClient) -> None:
    wrong = await _token(http, data={"grant_type": "client_credentials"}, auth=("as-1", "nope"))
    unknown = await _token(http, data={"grant_type": "client_credentials"}, auth=("ghost", "nope"))
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]


async def test_basic_credentials_are_form_url_decoded(http: httpx.AsyncClient, provision: Provision) -> None:
    await provision("as:2 x", scopes=("msgs-asregistration",))
    raw = base64.b64encode(b"as%3A2+x:as%3A2+x-secret").decode()
    response = await _token(
        http, data={"grant_type": "client_credentials"}, headers={"authorization": f"Basic {raw}"}
    )
    assert response.status_code == 200, response.text


async def test_discovery_and_jwks_describe_the_issuer(http: httpx.AsyncClient, rt: Runtime) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        meta = (await http.get(path)).json()
        assert meta["issuer"] == rt.settings.token_issuer
        assert meta["token_endpoint"] == f"{rt.settings.token_issuer}/oauth2/token"
        assert meta["jwks_uri"] == f"{rt.settings.token_issuer}/oauth2/jwks"
        assert "client_credentials" in meta["grant_types_supported"]
        assert set(meta["token_endpoint_auth_methods_supported"]) == {
            "client_secret_basic",
            "client_secret_post",
            "none",  # public clients (RFC 6749 2.1): authorization code + PKCE only
        }
    jwks = await http.get("/oauth2/jwks")
    assert jwks.headers["content-type"] == "application/jwk-set+json"
    assert {(k["kid"], k["alg"]) for k in jwks.json()["keys"]} == {
        (rt.keyring.active.kid, "ES256"),
        (rt.keyring.active_for("RS256").kid, "RS256"),
    }
