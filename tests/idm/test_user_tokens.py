"""The token endpoint's user grants (authorization_code + PKCE, refresh_token with rotation),
revocation (RFC 7009), userinfo (OIDC Core 5.3) and discovery, through the real app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from asgate.auth import TokenValidator
from asgate.domain.idm import User
from asgate.idm import oidc
from asgate.kernel.settings import Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests.conftest import Provision, bearer
from tests.idm.conftest import REDIRECT, VERIFIER, AddUser, Login, authorize_url, exchange, query

pytestmark = pytest.mark.usefixtures("console", "portal")


async def _verified(http: httpx.AsyncClient, token: str, audience: str) -> dict[str, Any]:
    """Verify a JWT as a relying party would: the key from the JWKS, ES256, issuer, audience."""
    meta = (await http.get("/.well-known/openid-configuration")).json()
    jwks = (await http.get("/oauth2/jwks")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid)).key
    claims: dict[str, Any] = jwt.decode(
        token, key, algorithms=["ES256"], audience=audience, issuer=meta["issuer"]
    )
    return claims


async def _refresh(http: httpx.AsyncClient, token: str, **form: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "console-1", **form}
    return await http.post("/oauth2/token", data=data)


async def _tokens(http: httpx.AsyncClient, login: Login, **kw: Any) -> dict[str, Any]:
    response = await exchange(http, (await login(**kw))["code"])
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_login_without_nonce_gets_an_id_token_without_one_unless_the_client_requires_it(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    # OIDC Core 3.1.2.1: nonce is optional in the code flow (PKCE binds the code to the client).
    body = await _tokens(http, login, nonce=None)
    id_claims = await _verified(http, body["id_token"], audience="console-1")
    assert id_claims["sub"] == alice.user_id and "nonce" not in id_claims
    assert id_claims["at_hash"] == oidc.at_hash(body["access_token"])  # still marked as an ID token
    # A client registered with --require-nonce is refused without one, by redirect.
    await rt.store.write(lambda tx: tx.clients.update("console-1", attributes={"require_nonce": True}))
    refused = await http.get(authorize_url(nonce=None))
    assert refused.status_code == 302
    answer = query(refused.headers["location"])
    assert answer["error"] == "invalid_request" and "nonce" in answer["error_description"]
    assert answer["state"] == "st-123"
    # ... and its nonce, when given, is echoed.
    body = await _tokens(http, login)
    assert (await _verified(http, body["id_token"], audience="console-1"))["nonce"] == "n-456"


async def test_full_login_refresh_reuse_and_revocation(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    # Authorization code -> tokens.
    answer = await login()
    response = await exchange(http, answer["code"])
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == rt.settings.idm_user_token_ttl == 900
    assert body["scope"] == "openid 3gpp:mc:ptt_service 3gpp:mc:data_service"

    # The ID token (OIDC Core 2, TS 33.180 B.2.1), verified against the JWKS.
    assert jwt.get_unverified_header(body["id_token"])["typ"] == "JWT"
    id_claims = await _verified(http, body["id_token"], audience="console-1")
    assert id_claims["sub"] == alice.user_id and id_claims["azp"] == "console-1"
    assert id_claims["nonce"] == "n-456" and id_claims["exp"] - id_claims["iat"] == 900
    assert id_claims["mcptt_id"] == "alice@mc.example" and id_claims["mcdata_id"] == "alice.data@mc.example"
    assert "mcvideo_id" not in id_claims and abs(id_claims["auth_time"] - id_claims["iat"]) <= 2

    # The access token: RFC 9068 + the MC claims, accepted by every API's validator.
    assert jwt.get_unverified_header(body["access_token"])["typ"] == "at+jwt"
    at_claims = await _verified(http, body["access_token"], audience=rt.settings.token_audience)
    assert at_claims["sub"] == alice.user_id and at_claims["client_id"] == at_claims["azp"] == "console-1"
    assert at_claims["mcptt_id"] == "alice@mc.example" and at_claims["scope"] == body["scope"]
    validator = TokenValidator(issuer=rt.settings.token_issuer, audience="asgate", keyring=rt.keyring)
    principal = await validator.validate(body["access_token"])
    assert principal.client_id == "console-1" and principal.subject == alice.user_id
    assert principal.has_scope("3gpp:mc:ptt_service") and principal.claims["mcptt_id"] == "alice@mc.example"

    # Userinfo.
    info = await http.get("/userinfo", headers=bearer(body["access_token"]))
    assert info.status_code == 200 and info.headers["cache-control"] == "no-store"
    assert info.json() == {  # no name: the profile scope was not asked for (OIDC Core 5.4)
        "sub": alice.user_id,
        "preferred_username": "alice",
        "mcptt_id": "alice@mc.example",
        "mcdata_id": "alice.data@mc.example",
    }

    # Refresh: a new access token, a rotated refresh token, an ID token without nonce.
    refreshed = await _refresh(http, body["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    second = refreshed.json()
    assert second["refresh_token"] != body["refresh_token"] and second["access_token"] != body["access_token"]
    second_id = await _verified(http, second["id_token"], audience="console-1")
    assert second_id["sub"] == alice.user_id and "nonce" not in second_id
    assert second_id["auth_time"] == id_claims["auth_time"]  # OIDC Core 12.2

    # Reusing the rotated token revokes the family: the newest refresh token stops working too.
    reuse = await _refresh(http, body["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert "already used" in reuse.json()["error_description"]
    assert (await _refresh(http, second["refresh_token"])).json()["error"] == "invalid_grant"
    # ... committed although the request was refused: the family is revoked in the database.
    assert [f.revoked_at is not None for f in await rt.store.oidc.families_of(alice.user_id)] == [True]

    # A new login; revocation of its refresh token ends it.
    third = await _tokens(http, login)
    revoke = await http.post(
        "/oauth2/revoke", data={"token": third["refresh_token"], "client_id": "console-1"}
    )
    assert revoke.status_code == 200 and revoke.content == b""
    assert (await _refresh(http, third["refresh_token"])).json()["error"] == "invalid_grant"
    # ... and the access tokens of that login with it (RFC 7009 2.1), for every API.
    gone = await http.get("/userinfo", headers=bearer(third["access_token"]))
    assert gone.status_code == 401 and "revoked" in gone.headers["www-authenticate"]
    assert (await http.get("/userinfo", headers=bearer(body["access_token"]))).status_code == 401  # reuse
    events = [(e.action, e.outcome) for e in await rt.store.audit.scan(resource=f"user/{alice.user_id}")]
    assert ("oidc.token.refresh", "denied") in events and ("oidc.token.revoke", "ok") in events


async def test_a_confidential_client_needs_its_secret_and_pkce(
    http: httpx.AsyncClient, alice: User, login: Login
) -> None:
    code = (await login(client_id="portal"))["code"]
    without_secret = await exchange(http, code, client_id="portal")
    assert without_secret.status_code == 401 and without_secret.json()["error"] == "invalid_client"
    code = (await login(client_id="portal"))["code"]
    wrong = await exchange(http, code, client_id="portal", client_secret="nope")
    assert wrong.status_code == 401
    code = (await login(client_id="portal"))["code"]
    no_pkce = await exchange(http, code, verifier=None, client_id="portal", client_secret="portal-secret")
    assert no_pkce.status_code == 400 and no_pkce.json()["error"] == "invalid_grant"
    code = (await login(client_id="portal"))["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER,
    }
    ok = await http.post("/oauth2/token", data=data, auth=("portal", "portal-secret"))
    assert ok.status_code == 200, ok.text
    refresh = {"grant_type": "refresh_token", "refresh_token": ok.json()["refresh_token"]}
    assert (await http.post("/oauth2/token", data=refresh)).status_code == 401  # public-style: refused
    assert (
        await http.post("/oauth2/token", data=refresh, auth=("portal", "portal-secret"))
    ).status_code == 200


@pytest.mark.parametrize(
    ("form", "verifier", "status", "error", "description"),
    [
        ({}, None, 400, "invalid_grant", "code_verifier"),  # PKCE missing
        ({}, "w" * 43, 400, "invalid_grant", "code_verifier"),  # wrong verifier
        ({"redirect_uri": "http://127.0.0.1:1/cb"}, VERIFIER, 400, "invalid_grant", "redirect_uri"),
        ({"code": "not-a-code"}, VERIFIER, 400, "invalid_grant", "unknown authorization code"),
        ({"code": ""}, VERIFIER, 400, "invalid_request", "code is required"),
        ({"client_id": "ghost"}, VERIFIER, 401, "invalid_client", "client authentication failed"),
        ({"client_id": "portal"}, VERIFIER, 401, "invalid_client", "client authentication failed"),
        ({"client_id": ""}, VERIFIER, 401, "invalid_client", "client authentication failed"),
    ],
    ids=["no-verifier", "wrong-verifier", "redirect", "unknown-code", "no-code", "unknown-client",
         "confidential-without-secret", "no-client"],
)  # fmt: skip
async def test_code_exchange_errors(
    http: httpx.AsyncClient,
    alice: User,
    login: Login,
    form: dict[str, str],
    verifier: str | None,
    status: int,
    error: str,
    description: str,
) -> None:
    form = dict(form)  # the table is shared by both backends' runs
    code = (await login())["code"]
    response = await exchange(http, form.pop("code", code), verifier=verifier, **form)
    assert response.status_code == status, response.text
    assert response.json()["error"] == error and description in response.json()["error_description"]
    assert response.headers["cache-control"] == "no-store"


async def test_a_failed_exchange_spends_the_code(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    code = (await login())["code"]
    assert (await exchange(http, code, verifier="w" * 43)).status_code == 400
    # Stored with the refusal, in one unit of work: the login is revoked, the refusal audited.
    (family,) = await rt.store.oidc.families_of(alice.user_id)
    assert family.revoked_at is not None
    (event,) = await rt.store.audit.scan(action="oidc.token.code")
    assert (event.outcome, event.reason) == ("denied", "code_verifier does not match the code challenge")
    retry = await exchange(http, code)
    assert retry.status_code == 400 and retry.json()["error"] == "invalid_grant"


async def test_a_code_issued_to_another_client_is_refused(
    http: httpx.AsyncClient, alice: User, login: Login
) -> None:
    code = (await login(client_id="portal"))["code"]
    response = await exchange(http, code)  # presented by console-1
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "the code was issued to another client",
    }


async def test_code_reuse_revokes_the_tokens_issued_with_it(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    code = (await login())["code"]
    first = await exchange(http, code)
    assert first.status_code == 200
    second = await exchange(http, code)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert "already used" in second.json()["error_description"]
    # The client got invalid_grant, and the revocation is committed: the login is revoked in the
    # database, so a process that did not see the replay refuses its access tokens too.
    (family,) = await rt.store.oidc.families_of(alice.user_id)
    assert family.revoked_at is not None
    from asgate.auth.revocation import Revocations

    elsewhere = Revocations()
    await elsewhere.poll(rt.store.oidc)
    assert elsewhere.revoked(jwt.decode(first.json()["access_token"], options={"verify_signature": False}))
    events = [(e.outcome, e.reason) for e in await rt.store.audit.scan(action="oidc.token.code")]
    assert events == [("ok", None), ("denied", "replayed; every token of this login revoked")]
    # RFC 6749 4.1.2: the refresh token issued with the code is revoked.
    refresh = await _refresh(http, first.json()["refresh_token"])
    assert refresh.json() == {
        "error": "invalid_grant",
        "error_description": "the refresh token has been revoked",
    }


async def test_concurrent_redemptions_of_one_code_give_one_token(
    http: httpx.AsyncClient, alice: User, login: Login
) -> None:
    code = (await login())["code"]
    answers = await asyncio.gather(*(exchange(http, code) for _ in range(4)))
    assert sorted(a.status_code for a in answers) == [200, 400, 400, 400]


@pytest.mark.usefixtures("alice")
async def test_an_expired_code_is_refused(make_settings: Callable[..., Settings]) -> None:
    # A second server on the same database, whose codes live one second.
    async with Runtime.open(make_settings(idm_code_ttl=1)) as rt, control_app(rt) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            code = (await Login(http)())["code"]
            await asyncio.sleep(1.2)
            response = await exchange(http, code)
    assert response.json() == {
        "error": "invalid_grant",
        "error_description": "the authorization code has expired",
    }


async def test_scopes_are_limited_to_the_users_mc_ids(
    http: httpx.AsyncClient, add_user: AddUser, login: Login
) -> None:
    await add_user("vic", mcdata_id=None, mcvideo_id="vic.video@mc.example")
    scope = "openid 3gpp:mc:ptt_service 3gpp:mc:video_service 3gpp:mc:data_service"
    tokens = await _tokens(http, login, username="vic", scope=scope)
    assert tokens["scope"] == "openid 3gpp:mc:ptt_service 3gpp:mc:video_service"
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert claims["mcvideo_id"] == "vic.video@mc.example" and "mcdata_id" not in claims


async def test_a_refresh_may_narrow_but_not_widen_the_scope(
    http: httpx.AsyncClient, alice: User, login: Login
) -> None:
    tokens = await _tokens(http, login)
    narrowed = await _refresh(http, tokens["refresh_token"], scope="3gpp:mc:ptt_service")
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "3gpp:mc:ptt_service"
    assert "id_token" in narrowed.json()  # the login was an OpenID Connect one
    wider = await _refresh(http, narrowed.json()["refresh_token"], scope="3gpp:mc:video_service")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    # The refused refresh did not spend the token; the full scope is still there.
    again = await _refresh(http, narrowed.json()["refresh_token"])
    assert again.status_code == 200 and again.json()["scope"] == tokens["scope"]


async def test_a_refresh_token_is_bound_to_its_client(
    http: httpx.AsyncClient, alice: User, login: Login
) -> None:
    tokens = await _tokens(http, login)
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    other = await http.post("/oauth2/token", data=data, auth=("portal", "portal-secret"))
    assert other.status_code == 400 and other.json()["error"] == "invalid_grant"
    assert (await _refresh(http, tokens["refresh_token"])).status_code == 200


async def test_a_new_password_or_disabling_ends_the_users_logins(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    tokens = await _tokens(http, login)
    await rt.store.write(lambda tx: tx.users.update("alice", password_hash=alice.password_hash + "x"))
    assert (await _refresh(http, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    await rt.store.write(lambda tx: tx.users.update("alice", password_hash=alice.password_hash))
    tokens = await _tokens(http, login)
    await rt.store.write(lambda tx: tx.users.update("alice", disabled=True))
    assert (await _refresh(http, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    info = await http.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert info.status_code == 401 and "invalid_token" in info.headers["www-authenticate"]


async def test_revocation_rules(http: httpx.AsyncClient, alice: User, login: Login) -> None:
    tokens = await _tokens(http, login)
    # RFC 7009 2.2: an unknown token is not an error.
    assert (
        await http.post("/oauth2/revoke", data={"token": "nope", "client_id": "console-1"})
    ).status_code == 200
    # Another client may not revoke it; a confidential client must authenticate.
    for token in (tokens["refresh_token"], tokens["access_token"]):
        other = await http.post("/oauth2/revoke", data={"token": token}, auth=("portal", "portal-secret"))
        assert other.status_code == 400 and other.json()["error"] == "unauthorized_client"
    anonymous = await http.post(
        "/oauth2/revoke", data={"token": tokens["refresh_token"], "client_id": "portal"}
    )
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    missing = await http.post("/oauth2/revoke", data={"client_id": "console-1"})
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert (await _refresh(http, tokens["refresh_token"])).status_code == 200  # still alive
    assert (await http.get("/userinfo", headers=bearer(tokens["access_token"]))).status_code == 200


async def test_revoking_an_access_token_ends_it_alone(
    http: httpx.AsyncClient, rt: Runtime, alice: User, login: Login
) -> None:
    tokens = await _tokens(http, login)
    form = {"token": tokens["access_token"], "token_type_hint": "access_token", "client_id": "console-1"}
    assert (await http.post("/oauth2/revoke", data=form)).status_code == 200
    refused = await http.get("/userinfo", headers=bearer(tokens["access_token"]))
    assert refused.status_code == 401 and refused.json()["cause"] == "INVALID_TOKEN"
    assert "revoked" in refused.headers["www-authenticate"]
    # Stored: a process that did not revoke it learns of it from the store.
    from asgate.auth.revocation import Revocations

    elsewhere = Revocations()
    await elsewhere.poll(rt.store.oidc)
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert elsewhere.revoked(claims) and not elsewhere.revoked({**claims, "jti": "other", "sid": "other"})
    # Revoking it again, or an expired or forged token, is no error (RFC 7009 2.2).
    assert (await http.post("/oauth2/revoke", data=form)).status_code == 200
    # The login goes on: its refresh token still works and gives a working access token.
    fresh = (await _refresh(http, tokens["refresh_token"])).json()
    assert (await http.get("/userinfo", headers=bearer(fresh["access_token"]))).status_code == 200


async def test_userinfo_needs_a_user_token_with_openid(
    http: httpx.AsyncClient, provision: Provision, token_for: Callable[..., Any]
) -> None:
    await provision("app-1", scopes=("mcx-registry",))
    app_token = await token_for("app-1")
    response = await http.get("/userinfo", headers=bearer(app_token))
    assert response.status_code == 403 and response.json()["cause"] == "INSUFFICIENT_SCOPE"
    assert (await http.get("/userinfo")).status_code == 401


async def test_userinfo_takes_the_token_in_the_header_or_a_posted_form_but_not_both(
    http: httpx.AsyncClient, alice: User, login: Login
) -> None:
    token = (await _tokens(http, login))["access_token"]
    by_get = await http.get("/userinfo", headers=bearer(token))
    assert by_get.status_code == 200 and by_get.json()["sub"] == alice.user_id
    by_post = await http.post("/userinfo", headers=bearer(token))
    assert by_post.status_code == 200 and by_post.json() == by_get.json()
    # RFC 6750 2.2: the form-encoded body parameter.
    by_form = await http.post("/userinfo", data={"access_token": token})
    assert by_form.status_code == 200 and by_form.json() == by_get.json()
    assert by_form.headers["cache-control"] == "no-store"
    # RFC 6750 2: never more than one method at once.
    both = await http.post("/userinfo", data={"access_token": token}, headers=bearer(token))
    assert both.status_code == 400 and 'error="invalid_request"' in both.headers["www-authenticate"]
    assert "not two" in both.json()["detail"]
    in_uri = await http.get("/userinfo", params={"access_token": token}, headers=bearer(token))
    assert in_uri.status_code == 400
    # A bad posted token is refused like a bad header.
    forged = await http.post("/userinfo", data={"access_token": token[:-4] + "AAAA"})
    assert forged.status_code == 401 and forged.json()["cause"] == "INVALID_TOKEN"
    assert (await http.post("/userinfo", data={"other": "x"})).status_code == 401


async def test_standard_scopes_release_the_users_name_email_and_phone(
    http: httpx.AsyncClient, rt: Runtime, add_user: AddUser, login: Login
) -> None:
    await add_user("carol", email="carol@example.com", phone_number="+4930123456")
    scope = "openid 3gpp:mc:ptt_service"
    # Not allowed to the client yet: refused like any scope it does not hold.
    refused = await http.get(authorize_url(scope=f"{scope} email"))
    assert query(refused.headers["location"])["error"] == "invalid_scope"
    client = await rt.store.clients.get("console-1")
    assert client is not None
    await rt.store.write(
        lambda tx: tx.clients.update("console-1", scopes=(*client.scopes, *oidc.STANDARD_SCOPES))
    )
    body = await _tokens(http, login, username="carol", scope=f"{scope} email phone profile")
    assert body["scope"] == f"{scope} email phone profile"
    id_claims = await _verified(http, body["id_token"], audience="console-1")
    assert (id_claims["email"], id_claims["phone_number"], id_claims["name"]) == (
        "carol@example.com",
        "+4930123456",
        "Carol",
    )
    info = (await http.post("/userinfo", data={"access_token": body["access_token"]})).json()
    assert (info["email"], info["phone_number"], info["name"]) == (
        "carol@example.com",
        "+4930123456",
        "Carol",
    )
    # Only the scopes granted: without email and phone, neither claim.
    body = await _tokens(http, login, username="carol", scope=f"{scope} offline_access")
    id_claims = await _verified(http, body["id_token"], audience="console-1")
    assert not {"email", "phone_number", "name"} & set(id_claims) and body["refresh_token"]
    info = (await http.get("/userinfo", headers=bearer(body["access_token"]))).json()
    assert not {"email", "phone_number"} & set(info)
    # A refresh narrowed to fewer scopes drops their claims from the new ID token.
    first = await _tokens(http, login, username="carol", scope=f"{scope} email phone")
    narrowed = (await _refresh(http, first["refresh_token"], scope=f"{scope} phone")).json()
    refreshed = await _verified(http, narrowed["id_token"], audience="console-1")
    assert "email" not in refreshed and refreshed["phone_number"] == "+4930123456"
    # Never to a client alone, even one that holds them.
    await rt.store.write(lambda tx: tx.clients.update("portal", scopes=("mcx-registry", "email")))
    data = {"grant_type": "client_credentials", "scope": "email"}
    alone = await http.post("/oauth2/token", data=data, auth=("portal", "portal-secret"))
    assert alone.status_code == 400 and alone.json()["error"] == "invalid_scope"
    default = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("portal", "portal-secret")
    )
    assert default.status_code == 200 and default.json()["scope"] == "mcx-registry"


async def test_client_credentials_never_grant_user_scopes(http: httpx.AsyncClient) -> None:
    # console-1 holds 3gpp:mc:* scopes, but only a user's login grants them.
    data = {"grant_type": "client_credentials", "scope": "3gpp:mc:ptt_service"}
    refused = await http.post("/oauth2/token", data=data, auth=("portal", "portal-secret"))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_scope"
    default = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("portal", "portal-secret")
    )
    assert default.status_code == 200 and default.json()["scope"] == "mcx-registry"


async def test_discovery_describes_the_openid_provider(http: httpx.AsyncClient, rt: Runtime) -> None:
    meta = (await http.get("/.well-known/openid-configuration")).json()
    issuer = rt.settings.token_issuer
    assert meta["authorization_endpoint"] == f"{issuer}/oauth2/authorize"
    assert meta["revocation_endpoint"] == f"{issuer}/oauth2/revoke"
    assert meta["userinfo_endpoint"] == f"{issuer}/userinfo"
    assert meta["response_types_supported"] == ["code"]
    assert meta["response_modes_supported"] == ["query", "form_post"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert set(meta["grant_types_supported"]) == {"authorization_code", "client_credentials", "refresh_token"}
    assert {"openid", "3gpp:mc:ptt_service", "3gpp:mc:data_group_management_service"} <= set(
        meta["scopes_supported"]
    )
    assert {"mcptt_id", "mcvideo_id", "mcdata_id", "nonce", "auth_time"} <= set(meta["claims_supported"])
    assert {"name", "email", "phone_number", "at_hash"} <= set(meta["claims_supported"])
    assert {"openid", "profile", "email", "phone", "offline_access"} <= set(meta["scopes_supported"])
    assert "none" in meta["token_endpoint_auth_methods_supported"]
    assert meta["authorization_response_iss_parameter_supported"] is True
