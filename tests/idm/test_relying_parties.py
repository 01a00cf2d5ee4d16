"""Relying parties nobody here wrote, unchanged, against a live ``asgate up`` over real HTTP (issue
9 item 1): pyoidc, Authlib and requests-oauthlib do discovery, the code flow with PKCE through the
real login page, ID-token validation (RS256 and ES256), userinfo both ways, refresh, revocation
and introspection, each with its own defaults.

The "browser" is a ``requests`` session that does what a browser does with the login page: it
fetches the page (and its cookie), posts the form with the fields the page put in it (the CSRF
token among them) and reads the redirect back to the relying party.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

from asgate.client.browser import parse_login_page
from tests.live import LiveServer, live_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]

REDIRECT = "https://rp.example/cb"
SCOPES = ("--scope", "3gpp:mc:ptt_service", "--scope", "profile", "--scope", "email")


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tmp_path_factory.mktemp("rp") / "data") as server:
        server.cli("users", "add", "alice", "--mcptt-id", "alice@mc.example", "--password", "alice-password",
                   "--name", "Alice Example", "--email", "alice@example.com")  # fmt: skip
        for client_id, extra in (
            ("rp-rs256", ()),  # the default for a new OpenID Connect client
            ("rp-es256", ("--id-token-alg", "ES256")),
            ("rp-authlib", ()),
        ):
            server.cli("clients", "add", client_id, "--secret", f"{client_id}-secret", *SCOPES,
                       "--redirect-uri", REDIRECT, *extra)  # fmt: skip
        server.cli("clients", "add", "rp-public", "--public", "--scope", "3gpp:mc:ptt_service",
                   "--redirect-uri", REDIRECT)  # fmt: skip
        # An MC service as a resource server: it may introspect tokens.
        server.cli("clients", "add", "rs-1", "--secret", "rs-1-secret", "--scope", "token-introspection")
        yield server


def sign_in(url: str, username: str = "alice", password: str = "alice-password") -> str:
    """A browser at the login page: fetch it, fill in its form, post it; the redirect's Location."""
    with requests.Session() as browser:
        page = browser.get(url, allow_redirects=False, timeout=10)
        assert page.status_code == 200, page.text
        form = parse_login_page(page.text)
        fields = {**form.fields, "username": username, "password": password}
        answer = browser.post(urljoin(page.url, form.action), data=fields, allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT), location
    return location


# ---------------------------------------------------------------- pyoidc


def _pyoidc(provider: LiveServer, client_id: str, alg: str) -> Any:
    from oic.oic import Client
    from oic.oic.message import RegistrationResponse
    from oic.utils.authn.client import CLIENT_AUTHN_METHOD

    client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    client.provider_config(provider.url)  # discovery, and the JWKS into its key jar
    registration = RegistrationResponse(
        client_id=client_id,
        client_secret=f"{client_id}-secret",
        redirect_uris=[REDIRECT],
        id_token_signed_response_alg=alg,
    )
    client.store_registration_info(registration)
    client.redirect_uris = [REDIRECT]
    return client


def _pyoidc_login(client: Any, scope: list[str]) -> tuple[Any, str]:
    from oic import rndstr
    from oic.oic.message import AuthorizationResponse

    state, nonce = rndstr(), rndstr()
    pkce, verifier = client.add_code_challenge()
    args = {
        "client_id": client.client_id,
        "response_type": "code",
        "scope": scope,
        "nonce": nonce,
        "redirect_uri": REDIRECT,
        "state": state,
        **pkce,
    }
    url = client.construct_AuthorizationRequest(request_args=args).request(client.authorization_endpoint)
    location = sign_in(url)
    answer = client.parse_response(AuthorizationResponse, info=urlsplit(location).query, sformat="urlencoded")
    assert answer["state"] == state
    tokens = client.do_access_token_request(
        state=state,
        request_args={"code": answer["code"], "code_verifier": verifier, "redirect_uri": REDIRECT},
        authn_method="client_secret_basic",
    )
    assert "error" not in tokens, tokens.to_dict()
    assert tokens["id_token"]["nonce"] == nonce
    return tokens, state


@pytest.mark.parametrize(("client_id", "alg"), [("rp-rs256", "RS256"), ("rp-es256", "ES256")])
def test_pyoidc_signs_in_verifies_the_id_token_and_uses_every_endpoint(
    provider: LiveServer, client_id: str, alg: str
) -> None:
    from oic.extension.client import Client as ExtensionClient
    from oic.oic.message import OpenIDSchema
    from oic.utils.authn.client import CLIENT_AUTHN_METHOD

    client = _pyoidc(provider, client_id, alg)
    assert alg in client.provider_info["id_token_signing_alg_values_supported"]
    tokens, state = _pyoidc_login(client, ["openid", "3gpp:mc:ptt_service", "profile", "offline_access"])
    # pyoidc verified the ID token's signature with the provider's JWKS, for the registered alg.
    id_token = tokens["id_token"]
    assert id_token.jws_header["alg"] == alg
    assert id_token["aud"] == [client_id] and id_token["name"] == "Alice Example"
    assert id_token["mcptt_id"] == "alice@mc.example"
    # Userinfo: pyoidc's default (POST, token in the body) and GET with the header.
    posted = client.do_user_info_request(state=state)
    assert isinstance(posted, OpenIDSchema) and posted["sub"] == id_token["sub"]
    assert posted["name"] == "Alice Example" and "email" not in posted  # email was not asked for
    fetched = client.do_user_info_request(state=state, method="GET")
    assert fetched.to_dict() == posted.to_dict()
    # Refresh (offline_access was granted): a new access token and a new, verified ID token.
    refreshed = client.do_access_token_refresh(state=state, authn_method="client_secret_basic")
    assert "error" not in refreshed, refreshed.to_dict()
    assert refreshed["access_token"] != tokens["access_token"]
    assert refreshed["id_token"]["sub"] == id_token["sub"]
    # A resource server introspects; the client revokes; the resource server sees it.
    resource_server = ExtensionClient(client_id="rs-1", client_authn_method=CLIENT_AUTHN_METHOD)
    resource_server.client_secret = "rs-1-secret"
    resource_server.provider_info = client.provider_info
    # pyoidc reads these endpoints from attributes it creates on the fly (typed stubs do not know them).
    resource_server.introspection_endpoint = client.provider_info["introspection_endpoint"]  # type: ignore[attr-defined]
    resource_server.revocation_endpoint = client.provider_info["revocation_endpoint"]  # type: ignore[attr-defined]

    def introspect(token: str) -> dict[str, Any]:
        answer = resource_server.do_token_introspection(
            request_args={"token": token}, authn_method="client_secret_basic", body_type="json"
        )
        return dict(answer.to_dict())

    live = introspect(refreshed["access_token"])
    assert live["active"] is True and live["sub"] == id_token["sub"] and live["client_id"] == client_id
    assert live["username"] == "alice" and "offline_access" in live["scope"]
    revoker = ExtensionClient(client_id=client_id, client_authn_method=CLIENT_AUTHN_METHOD)
    revoker.client_secret = f"{client_id}-secret"
    revoker.revocation_endpoint = client.provider_info["revocation_endpoint"]  # type: ignore[attr-defined]
    status = revoker.do_token_revocation(
        request_args={"token": refreshed["access_token"], "token_type_hint": "access_token"},
        authn_method="client_secret_basic",
    )
    assert status == 200
    assert introspect(refreshed["access_token"]) == {"active": False}
    refused = requests.get(
        client.provider_info["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {refreshed['access_token']}"},
        timeout=10,
    )
    assert refused.status_code == 401 and "revoked" in refused.headers["www-authenticate"]
    # Revoking the refresh token ends the login: its refresh token and access tokens.
    refresh_token = refreshed["refresh_token"]
    assert introspect(refresh_token)["active"] is True
    assert (
        revoker.do_token_revocation(
            request_args={"token": refresh_token, "token_type_hint": "refresh_token"},
            authn_method="client_secret_basic",
        )
        == 200
    )
    assert introspect(refresh_token) == {"active": False}


# ---------------------------------------------------------------- Authlib


def test_authlib_signs_in_verifies_the_id_token_and_uses_every_endpoint(provider: LiveServer) -> None:
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt
    from joserfc.jwk import KeySet

    meta = requests.get(f"{provider.url}/.well-known/openid-configuration", timeout=10).json()
    client = OAuth2Session(
        "rp-authlib",
        "rp-authlib-secret",
        scope="openid 3gpp:mc:ptt_service email offline_access",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    )
    verifier, nonce = generate_token(48), generate_token(20)
    url, state = client.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    location = sign_in(url)
    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=location, code_verifier=verifier
    )
    assert parse_qs(urlsplit(location).query)["iss"] == [meta["issuer"]]  # RFC 9207
    # ID token: signature with the JWKS (RS256 for a new client), issuer, audience, nonce, at_hash.
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    verified = jwt.decode(token["id_token"], keys, algorithms=["RS256"])  # Authlib's JOSE (joserfc)
    claims = CodeIDToken(
        verified.claims,
        verified.header,
        options={"iss": {"values": [meta["issuer"]]}},
        params={"nonce": nonce, "client_id": "rp-authlib", "access_token": token["access_token"]},
    )
    claims.validate()
    assert verified.header["alg"] == "RS256" and claims["email"] == "alice@example.com"
    # Userinfo with the header (Authlib's session adds it) and in a form body (RFC 6750 2.2).
    info = client.get(meta["userinfo_endpoint"]).json()
    assert info["sub"] == claims["sub"] and info["email"] == "alice@example.com" and "name" not in info
    body = client.post(
        meta["userinfo_endpoint"], data={"access_token": token["access_token"]}, withhold_token=True
    )
    assert body.json() == info
    # Refresh, then introspection by a resource server and revocation by the client.
    refreshed = client.refresh_token(meta["token_endpoint"])
    assert refreshed["access_token"] != token["access_token"] and refreshed["refresh_token"]
    resource_server = OAuth2Session("rs-1", "rs-1-secret")
    answer = resource_server.introspect_token(
        meta["introspection_endpoint"], token=refreshed["access_token"]
    ).json()
    assert (
        answer["active"] is True
        and answer["username"] == "alice"
        and answer["mcptt_id"] == "alice@mc.example"
    )
    revoked = client.revoke_token(meta["revocation_endpoint"], refreshed["refresh_token"], "refresh_token")
    assert revoked.status_code == 200
    # The whole login ended: its access tokens are refused and introspect as inactive.
    answer = resource_server.introspect_token(
        meta["introspection_endpoint"], token=refreshed["access_token"]
    ).json()
    assert answer == {"active": False}
    assert client.get(meta["userinfo_endpoint"]).status_code == 401
    # A client that does not hold token-introspection may not ask.
    refused = client.introspect_token(meta["introspection_endpoint"], token=token["access_token"])
    assert refused.status_code == 403 and refused.json()["error"] == "unauthorized_client"


# ---------------------------------------------------------------- requests-oauthlib


def test_requests_oauthlibs_default_code_flow_works(
    provider: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from requests_oauthlib import OAuth2Session

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # the test server speaks plain HTTP
    meta = requests.get(f"{provider.url}/.well-known/openid-configuration", timeout=10).json()
    # Its defaults: no nonce, a public client naming itself, PKCE when asked for.
    client = OAuth2Session(
        "rp-public", redirect_uri=REDIRECT, scope=["openid", "3gpp:mc:ptt_service"], pkce="S256"
    )
    url, _state = client.authorization_url(meta["authorization_endpoint"])
    assert "nonce=" not in url
    location = sign_in(url)
    token = client.fetch_token(
        meta["token_endpoint"], authorization_response=location, include_client_id=True
    )
    assert token["id_token"] and token["token_type"] == "Bearer"
    # A new client without offline_access gets no refresh token (OIDC Core 11).
    assert "refresh_token" not in token
    info = client.get(meta["userinfo_endpoint"])
    assert info.status_code == 200 and info.json()["mcptt_id"] == "alice@mc.example"
    assert os.environ["OAUTHLIB_INSECURE_TRANSPORT"] == "1"


def test_the_live_server_publishes_both_signing_keys(provider: LiveServer) -> None:
    jwks = requests.get(f"{provider.url}/oauth2/jwks", timeout=10).json()
    assert sorted((k["kty"], k["alg"]) for k in jwks["keys"]) == [("EC", "ES256"), ("RSA", "RS256")]
    data_dir = Path(provider.env["ASGATE_DATA_DIR"])
    assert (data_dir / "kek").is_file() and not (data_dir / "keys").exists()  # the keys: in the database
