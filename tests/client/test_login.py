# ruff: noqa: F811 - the fixtures imported from tests/idm/conftest.py are parameters here
"""The SDK's UserLogin (RFC 8252): a real loopback listener, the real login page played by
ScriptedBrowser, the ID token verified against the JWKS, refresh with rotation, logout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest

from asgate.auth import TokenValidator
from asgate.client import ProblemError, ScriptedBrowser, UserLogin
from asgate.domain.idm import User
from asgate.kernel.settings import TrustedIssuer
from asgate.system.runtime import Runtime
from tests.idm.conftest import AddUser, add_user, alice, console, portal  # noqa: F401 - fixtures
from tests.live import live_server

clients = pytest.mark.usefixtures("console", "portal")


@pytest.fixture
async def idm(http: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """The in-process app at the issuer's own URL (every request goes to the app)."""
    yield http


def _login(rt: Runtime, client_id: str = "console-1", **kw: Any) -> UserLogin:
    # The fixture clients register http://127.0.0.1/cb: the listener's ephemeral port is accepted.
    return UserLogin(rt.settings.token_issuer, client_id, redirect_path="/cb", **kw)


@clients
async def test_login_through_the_loopback_listener(idm: httpx.AsyncClient, rt: Runtime, alice: User) -> None:
    login = _login(rt, scope="openid 3gpp:mc:ptt_service")
    seen: list[str] = []
    browser = ScriptedBrowser("alice", "alice-password", http=idm)

    async def watch(url: str) -> None:
        seen.append(url)
        await browser(url)

    tokens = await login.login(idm, watch)
    params = dict(p.split("=", 1) for p in urlsplit(seen[0]).query.split("&"))
    assert params["code_challenge_method"] == "S256" and params["redirect_uri"].startswith(
        "http%3A%2F%2F127.0.0.1%3A"
    )
    assert login.claims["sub"] == alice.user_id and login.claims["mcptt_id"] == "alice@mc.example"
    # The SDK asks for offline_access (OIDC Core 11): its refresh token depends on it.
    assert "scope=openid+3gpp%3Amc%3Aptt_service+offline_access&" in seen[0]
    assert tokens.scope == "openid 3gpp:mc:ptt_service offline_access" and tokens.refresh_token
    principal = await rt.validator.validate(await login.token(idm))
    assert principal.subject == alice.user_id and principal.claims["mcptt_id"] == "alice@mc.example"
    # Shortly before expiry the token is refreshed (and the refresh token rotated).
    old = tokens
    login.tokens = type(tokens)(**{**tokens.__dict__, "expires_at": 0.0})
    fresh = await login.token(idm)
    assert fresh != old.access_token and login.tokens.refresh_token != old.refresh_token
    assert login.claims["sub"] == alice.user_id
    # Logout revokes the refresh token: the old one is dead on the server too.
    current = login.tokens.refresh_token
    await login.logout(idm)
    assert login.tokens is None
    data = {"grant_type": "refresh_token", "refresh_token": current, "client_id": "console-1"}
    assert (await idm.post("/oauth2/token", data=data)).json()["error"] == "invalid_grant"
    with pytest.raises(ProblemError, match="not logged in"):
        await login.token(idm)


@clients
async def test_concurrent_callers_share_one_refresh(idm: httpx.AsyncClient, rt: Runtime, alice: User) -> None:
    login = _login(rt)
    tokens = await login.login(idm, ScriptedBrowser("alice", "alice-password", http=idm))
    login.tokens = type(tokens)(**{**tokens.__dict__, "expires_at": 0.0})
    answers = await asyncio.gather(*(login.token(idm) for _ in range(5)))
    assert len(set(answers)) == 1 and answers[0] != tokens.access_token
    assert (await login.refresh(idm)).access_token  # the login survived: no replay was detected


@clients
async def test_a_confidential_client_logs_in_with_its_secret(
    idm: httpx.AsyncClient, rt: Runtime, alice: User
) -> None:
    login = _login(rt, "portal", client_secret="portal-secret")
    await login.login(idm, ScriptedBrowser("alice", "alice-password", http=idm))
    assert login.claims["aud"] == "portal"
    assert (await login.refresh(idm)).access_token


@clients
async def test_a_wrong_password_fails_before_any_redirect(
    idm: httpx.AsyncClient, rt: Runtime, alice: User
) -> None:
    login = _login(rt)
    with pytest.raises(ProblemError, match="Wrong user name or password"):
        await login.login(idm, ScriptedBrowser("alice", "not-her-password", http=idm))
    assert login.tokens is None


@clients
async def test_an_error_redirect_reaches_the_application(
    idm: httpx.AsyncClient, rt: Runtime, add_user: AddUser
) -> None:
    await add_user("bob", disabled=True)
    login = _login(rt)
    with pytest.raises(ProblemError, match="access_denied") as caught:
        await login.login(idm, ScriptedBrowser("bob", "bob-password", http=idm))
    assert caught.value.status == 403


@clients
async def test_a_scope_the_client_does_not_hold_is_refused(
    idm: httpx.AsyncClient, rt: Runtime, alice: User
) -> None:
    login = _login(rt, scope="openid msgs-admin")
    with pytest.raises(ProblemError, match="invalid_scope"):
        await login.login(idm, ScriptedBrowser("alice", "alice-password", http=idm))


@clients
async def test_the_listener_ignores_answers_that_are_not_its_own(
    idm: httpx.AsyncClient, rt: Runtime, alice: User
) -> None:
    login = _login(rt)
    statuses: list[int] = []
    browser = ScriptedBrowser("alice", "alice-password", http=idm)

    async def attacker_first(url: str) -> None:
        redirect = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))["redirect_uri"]
        target = redirect.replace("%3A", ":").replace("%2F", "/")
        async with httpx.AsyncClient() as network:
            statuses.append((await network.get(f"{target}?code=forged&state=guess")).status_code)
            statuses.append((await network.get(target.rsplit("/", 1)[0] + "/favicon.ico")).status_code)
        await browser(url)

    await login.login(idm, attacker_first)
    assert statuses == [400, 404] and login.claims["sub"] == alice.user_id


@clients
async def test_an_id_token_signed_by_an_unpublished_key_is_rejected(
    idm: httpx.AsyncClient, rt: Runtime, alice: User
) -> None:
    login = _login(rt)
    await login.login(idm, ScriptedBrowser("alice", "alice-password", http=idm))
    assert login.tokens is not None
    signer = jwt.get_unverified_header(login.tokens.id_token)["kid"]
    await rt.signing_keys.rotate("ES256", delay=0)
    await rt.signing_keys.rotate("RS256", delay=0)
    await rt.signing_keys.retire(signer)  # the JWKS no longer holds the key that signed the ID token
    with pytest.raises(ProblemError, match="ID token rejected"):
        await login._verify_id_token(idm, login.tokens.id_token, None)


@clients
async def test_an_id_token_for_another_nonce_is_rejected(
    idm: httpx.AsyncClient, rt: Runtime, alice: User
) -> None:
    login = _login(rt)
    await login.login(idm, ScriptedBrowser("alice", "alice-password", http=idm))
    assert login.tokens is not None
    with pytest.raises(ProblemError, match="nonce does not match"):
        await login._verify_id_token(idm, login.tokens.id_token, "another-nonce")
    other = _login(rt, "portal")
    with pytest.raises(ProblemError, match="ID token rejected: Audience doesn't match"):
        await other._verify_id_token(idm, login.tokens.id_token, None)


@pytest.mark.slow
@pytest.mark.xdist_group("process")
async def test_login_against_a_real_server_provisioned_by_the_cli(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    """The README path: the administrator provisions with the CLI, a native app signs a user in
    over real sockets, and a resource server validates the token with the issuer's JWKS."""
    with live_server(tmp_path / "data", database) as server:
        server.cli("clients", "add", "console-9", "--public", "--scope", "3gpp:mc:ptt_service",
                   "--redirect-uri", "http://127.0.0.1/callback")  # fmt: skip
        server.cli("users", "add", "zoe", "--mcptt-id", "zoe@mc.example", "--password", "zoe-password")
        login = UserLogin(server.url, "console-9")
        async with httpx.AsyncClient(timeout=10.0) as network:
            tokens = await login.login(network, ScriptedBrowser("zoe", "zoe-password"))
            meta = (await network.get(f"{server.url}/.well-known/openid-configuration")).json()
            trusted = TrustedIssuer(issuer=meta["issuer"], jwks_uri=meta["jwks_uri"])
            validator = TokenValidator(
                issuer="https://elsewhere.example",
                audience="asgate",
                keyring=None,
                trusted=[trusted],
                http=network,
            )
            principal = await validator.validate(tokens.access_token)
            info = await network.get(
                meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {tokens.access_token}"}
            )
        assert principal.claims["mcptt_id"] == "zoe@mc.example" and principal.client_id == "console-9"
        assert info.json()["mcptt_id"] == login.claims["mcptt_id"] == "zoe@mc.example"
        shown = server.cli("users", "show", "zoe", "--json").stdout
        assert f'"user_id": "{login.claims["sub"]}"' in shown
