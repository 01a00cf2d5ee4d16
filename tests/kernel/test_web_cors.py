"""CORS on the control-plane endpoints a browser application calls (token, userinfo, discovery,
CSC-14), on both backends: origins any application is allowed get their answers, errors included;
the administrator APIs and the sign-in page never answer a foreign page."""

from __future__ import annotations

import httpx
import pytest

from asgate.kernel.web_cors import AllowedOrigins
from tests.conftest import Mint, Provision, bearer

CONSOLE = "https://console.example"
PREFLIGHT = {"Origin": CONSOLE, "Access-Control-Request-Method": "POST"}


@pytest.fixture
async def console(http: httpx.AsyncClient, mint: Mint, provision: Provision) -> None:
    """console-1 is allowed https://console.example (as `asgate apps update --allow-origin`)."""
    await provision("console-1", scopes=("mcx-registry",))
    ops = bearer(mint("ops", "mcx-registry-admin"))
    spec = {"allowedServices": [{"serviceType": "GM"}], "allowedOrigins": [CONSOLE]}
    response = await http.put("/mcx-registry-admin/v1/apps/console-1", json=spec, headers=ops)
    assert response.status_code == 201, response.text


def assert_cors(response: httpx.Response) -> None:
    assert response.headers["access-control-allow-origin"] == CONSOLE
    assert "Origin" in response.headers["vary"]
    # No cookies on these endpoints: a page never needs them sent, and never reads an answer with them.
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.usefixtures("console")
async def test_a_browser_application_preflights_and_reads_the_token_endpoint(http: httpx.AsyncClient) -> None:
    preflight = await http.options(
        "/oauth2/token",
        headers={**PREFLIGHT, "Access-Control-Request-Headers": "content-type, authorization"},
    )
    assert preflight.status_code == 204
    assert_cors(preflight)
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert preflight.headers["access-control-allow-headers"] == "content-type, authorization"
    issued = await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "mcx-registry"},
        auth=("console-1", "console-1-secret"),
        headers={"Origin": CONSOLE},
    )
    assert issued.status_code == 200 and "access_token" in issued.json()
    assert_cors(issued)
    refused = await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("console-1", "wrong"),
        headers={"Origin": CONSOLE},
    )
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    assert_cors(refused)  # the page can read why


@pytest.mark.usefixtures("console")
async def test_userinfo_discovery_and_csc14_answer_the_allowed_origin_errors_included(
    http: httpx.AsyncClient, mint: Mint
) -> None:
    origin = {"Origin": CONSOLE}
    no_token = await http.get("/userinfo", headers=origin)
    assert no_token.status_code == 401
    assert "www-authenticate" in no_token.headers["access-control-expose-headers"].lower()
    discovery = await http.get("/.well-known/openid-configuration", headers=origin)
    keys = await http.get("/oauth2/jwks", headers=origin)
    app = bearer(mint("console-1", "mcx-registry"))
    missing = await http.get("/mcx-registry/v1/app-profiles/nope", headers={**app, **origin})
    assert (discovery.status_code, keys.status_code, missing.status_code) == (200, 200, 404)
    for response in (no_token, discovery, keys, missing):
        assert_cors(response)
    preflight = await http.options(
        "/mcx-registry/v1/authorizations",
        headers={**PREFLIGHT, "Access-Control-Request-Headers": "authorization"},
    )
    assert (
        preflight.status_code == 204 and preflight.headers["access-control-allow-headers"] == "authorization"
    )


@pytest.mark.usefixtures("console")
async def test_other_origins_the_admin_apis_and_the_sign_in_page_get_no_cors(
    http: httpx.AsyncClient, mint: Mint
) -> None:
    foreign = await http.options("/oauth2/token", headers={**PREFLIGHT, "Origin": "https://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["cause"] == "ORIGIN_NOT_ALLOWED"
    assert "access-control-allow-origin" not in foreign.headers
    answered = await http.get("/oauth2/jwks", headers={"Origin": "https://evil.example"})
    assert answered.status_code == 200 and "access-control-allow-origin" not in answered.headers
    plain = await http.get("/oauth2/jwks")
    for response in (answered, plain):  # no cache hands the allowed origin's answer to another
        assert response.headers["vary"] == "Origin"
    ops = bearer(mint("ops", "mcx-registry-admin"))
    for path in ("/mcx-registry-admin/v1/apps", "/oauth2/authorize"):
        preflight = await http.options(path, headers=PREFLIGHT)
        assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers
        read = await http.get(path, headers={**ops, "Origin": CONSOLE})
        assert "access-control-allow-origin" not in read.headers, path


async def test_allowed_origins_are_read_again_after_the_refresh_interval() -> None:
    stored = {"https://a.example"}
    now = [0.0]

    async def load() -> set[str]:
        return set(stored)

    origins = AllowedOrigins(load, refresh=5.0, clock=lambda: now[0])
    assert await origins.current() == {b"https://a.example"}
    stored.add("https://b.example")
    now[0] = 4.9
    assert await origins.current() == {b"https://a.example"}  # cached
    now[0] = 5.0
    assert await origins.current() == {b"https://a.example", b"https://b.example"}
