"""Issue 9 item 1, the rest: RS256 ID tokens per client, offline_access governing refresh tokens,
``name`` only with ``profile``, and token introspection (RFC 7662)."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pytest

from asgate.domain.idm import User
from asgate.system.runtime import Runtime
from tests.conftest import Provision, bearer
from tests.idm.conftest import Login, exchange

pytestmark = pytest.mark.usefixtures("console", "portal")


async def _tokens(http: httpx.AsyncClient, login: Login, **kw: str) -> dict[str, Any]:
    response = await exchange(http, (await login(**kw))["code"])
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _id_claims(http: httpx.AsyncClient, token: str, alg: str) -> dict[str, Any]:
    """Verify an ID token as a relying party would, allowing only ``alg``."""
    jwks = (await http.get("/oauth2/jwks")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
    claims: dict[str, Any] = jwt.decode(token, key, algorithms=[alg], audience="console-1")
    return claims


async def test_id_tokens_are_signed_with_the_clients_algorithm(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    meta = (await http.get("/.well-known/openid-configuration")).json()
    assert meta["id_token_signing_alg_values_supported"] == ["RS256", "ES256"]
    # A client registered before the choice existed keeps ES256.
    legacy = await _tokens(http, login)
    assert jwt.get_unverified_header(legacy["id_token"])["alg"] == "ES256"
    await rt.store.write(
        lambda tx: tx.clients.update("console-1", attributes={"id_token_signed_response_alg": "RS256"})
    )
    body = await _tokens(http, login)
    assert jwt.get_unverified_header(body["id_token"])["alg"] == "RS256"
    claims = await _id_claims(http, body["id_token"], "RS256")
    assert claims["sub"] == alice.user_id and claims["nonce"] == "n-456"
    assert claims["at_hash"]  # SHA-256 for RS256 as for ES256 (OIDC Core 3.1.3.6)
    # The access token keeps its algorithm: the SAS and every API verify ES256 access tokens.
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "ES256"
    assert (await rt.validator.validate(body["access_token"])).subject == alice.user_id
    # An RS256 ID token is never taken for an access token.
    refused = await http.get("/userinfo", headers=bearer(body["id_token"]))
    assert refused.status_code == 401 and refused.json()["cause"] == "INVALID_TOKEN"


async def test_offline_access_governs_refresh_tokens(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    await rt.store.write(
        lambda tx: tx.clients.update("console-1", attributes={"refresh_tokens": "offline_access"})
    )
    without = await _tokens(http, login)
    assert "refresh_token" not in without and without["access_token"]
    scope = "openid 3gpp:mc:ptt_service offline_access"
    # Any client with a redirect URI may ask for it (console-1 does not hold it), as for openid.
    with_it = await _tokens(http, login, scope=scope)
    assert with_it["refresh_token"] and with_it["scope"] == scope
    data = {
        "grant_type": "refresh_token",
        "refresh_token": with_it["refresh_token"],
        "client_id": "console-1",
    }
    refreshed = await http.post("/oauth2/token", data=data)
    assert refreshed.status_code == 200 and refreshed.json()["refresh_token"] != with_it["refresh_token"]
    # A client registered to always get one does, without offline_access.
    await rt.store.write(lambda tx: tx.clients.update("console-1", attributes={"refresh_tokens": "always"}))
    assert (await _tokens(http, login))["refresh_token"]


async def test_name_only_with_the_profile_scope(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    await rt.store.write(lambda tx: tx.clients.update("console-1", scopes=("3gpp:mc:ptt_service", "profile")))
    plain = await _tokens(http, login, scope="openid 3gpp:mc:ptt_service")
    info = (await http.get("/userinfo", headers=bearer(plain["access_token"]))).json()
    assert "name" not in info and info["preferred_username"] == "alice"
    assert "name" not in await _id_claims(http, plain["id_token"], "ES256")
    profile = await _tokens(http, login, scope="openid 3gpp:mc:ptt_service profile")
    info = (await http.post("/userinfo", data={"access_token": profile["access_token"]})).json()
    assert info["name"] == "Alice"
    assert (await _id_claims(http, profile["id_token"], "ES256"))["name"] == "Alice"


# ---------------------------------------------------------------- introspection (RFC 7662)

RS_AUTH = ("rs-1", "rs-1-secret")


@pytest.fixture
async def resource_server(provision: Provision) -> None:
    """An MC service registered as a resource server: it may introspect."""
    await provision("rs-1", scopes=("token-introspection",))


async def _introspect(http: httpx.AsyncClient, token: str, **form: str) -> dict[str, Any]:
    response = await http.post("/oauth2/introspect", data={"token": token, **form}, auth=RS_AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


@pytest.mark.usefixtures("resource_server")
async def test_introspection_describes_live_tokens_and_nothing_else(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    meta = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert meta["introspection_endpoint"] == f"{rt.settings.token_issuer}/oauth2/introspect"
    assert meta["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
    ]
    body = await _tokens(http, login)
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    answer = await _introspect(http, body["access_token"], token_type_hint="access_token")
    assert answer["active"] is True and answer["token_type"] == "Bearer"
    assert (answer["sub"], answer["username"], answer["client_id"]) == (alice.user_id, "alice", "console-1")
    assert answer["scope"] == body["scope"] and answer["mcptt_id"] == "alice@mc.example"
    for name in ("exp", "iat", "nbf", "aud", "iss", "jti"):
        assert answer[name] == claims[name]
    # A refresh token too, whatever the hint says (RFC 7662 2.1).
    refresh = await _introspect(http, body["refresh_token"], token_type_hint="access_token")
    assert (
        refresh["active"] is True and refresh["client_id"] == "console-1" and refresh["sub"] == alice.user_id
    )
    # Revoked: the login's refresh token, and with it the access token.
    revoke = await http.post(
        "/oauth2/revoke", data={"token": body["refresh_token"], "client_id": "console-1"}
    )
    assert revoke.status_code == 200
    assert await _introspect(http, body["access_token"]) == {"active": False}
    assert await _introspect(http, body["refresh_token"]) == {"active": False}
    # A rotated refresh token is no longer active; the new one is.
    second = await _tokens(http, login)
    data = {"grant_type": "refresh_token", "refresh_token": second["refresh_token"], "client_id": "console-1"}
    rotated = (await http.post("/oauth2/token", data=data)).json()
    assert await _introspect(http, second["refresh_token"]) == {"active": False}
    assert (await _introspect(http, rotated["refresh_token"]))["active"] is True
    # A client's own token (client credentials) has no user.
    app = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=RS_AUTH)
    own = await _introspect(http, app.json()["access_token"])
    assert own["active"] is True and own["client_id"] == "rs-1" and "username" not in own


@pytest.mark.usefixtures("resource_server")
async def test_introspection_says_inactive_for_anything_unknown(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    body = await _tokens(http, login)
    header, payload, _ = body["access_token"].split(".")
    forged = f"{header}.{payload}.{'A' * 86}"
    expired = rt.keyring.sign(
        {
            "iss": rt.settings.token_issuer,
            "aud": rt.settings.token_audience,
            "sub": "x",
            "exp": 1000,
            "jti": "j",
        }
    )
    foreign = jwt.encode({"iss": "https://elsewhere.example", "exp": 4_000_000_000}, "k" * 32, "HS256")
    for token in ("nope", "a.b.c", forged, expired, foreign, body["id_token"], "x" * 12_000):
        assert await _introspect(http, token) == {"active": False}, token[:40]
    huge = await http.post("/oauth2/introspect", data={"token": "x" * 20_000}, auth=RS_AUTH)
    assert huge.status_code == 400 and huge.json()["error"] == "invalid_request"


async def test_only_authorized_resource_servers_may_introspect(
    http: httpx.AsyncClient, provision: Provision, rt: Runtime, alice: User, login: Login
) -> None:
    body = await _tokens(http, login)
    # A public client names itself only: no authentication, no introspection.
    public = await http.post(
        "/oauth2/introspect", data={"token": body["access_token"], "client_id": "console-1"}
    )
    assert public.status_code == 401 and public.json()["error"] == "invalid_client"
    # A confidential client without the scope.
    lacking = await http.post(
        "/oauth2/introspect", data={"token": body["access_token"]}, auth=("portal", "portal-secret")
    )
    assert lacking.status_code == 403 and lacking.json()["error"] == "unauthorized_client"
    assert "token-introspection" in lacking.json()["error_description"]
    # The scope, but a wrong secret; by client_secret_post with the right one it works.
    await provision("rs-2", scopes=("token-introspection",))
    wrong = await http.post("/oauth2/introspect", data={"token": "t"}, auth=("rs-2", "nope"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    posted = {"token": body["access_token"], "client_id": "rs-2", "client_secret": "rs-2-secret"}
    assert (await http.post("/oauth2/introspect", data=posted)).json()["active"] is True
    missing = await http.post(
        "/oauth2/introspect", data={"client_id": "rs-2", "client_secret": "rs-2-secret"}
    )
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    as_json = await http.post("/oauth2/introspect", json={"token": "t"}, auth=("rs-2", "rs-2-secret"))
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"
