"""Trust boundary: Application Server -> MSGin5G Server (TS 23.554 8.2.5/8.2.6, TS 29.538).

What crosses it: an AS's registration (its AS Service ID, the AS profile, a ``targetUri`` the
server will call) and its de-registration. The attacker is a provisioned AS going after another AS's
identity or registration, or any caller without the right credentials. Every test asserts the
refusal and that the other AS's registration is still there, unchanged, and the attempt audited.
"""

from __future__ import annotations

import httpx
import pytest

from asgate.system.runtime import Runtime
from tests.conftest import Mint, Provision, TokenFor, bearer

BASE = "/msgs-asregistration/v1/registrations"


@pytest.fixture
async def tokens(provision: Provision, token_for: TokenFor, mint: Mint) -> dict[str, str]:
    await provision("as-a", as_svc_ids=("AS-A",))
    await provision("as-b", as_svc_ids=("AS-B",))
    return {"as-a": await token_for("as-a"), "as-b": await token_for("as-b")}


async def _registered(http: httpx.AsyncClient, token: str, as_svc_id: str) -> str:
    response = await http.post(BASE, json={"asSvcId": as_svc_id}, headers=bearer(token))
    assert response.status_code == 201, response.text
    return str(response.headers["location"])


async def test_an_as_cannot_take_over_another_as_service_id(
    http: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    location = await _registered(http, tokens["as-a"], "AS-A")
    before = await rt.store.registrations.get(location.rsplit("/", 1)[1])
    # A re-registration replaces the live one (TS 23.554 8.2.5): only the AS that owns the ID may.
    hijack = await http.post(BASE, json={"asSvcId": "AS-A"}, headers=bearer(tokens["as-b"]))
    assert (hijack.status_code, hijack.json()["cause"]) == (403, "AS_SVC_ID_NOT_ALLOWED")
    assert await rt.store.registrations.get(location.rsplit("/", 1)[1]) == before
    assert await rt.store.registrations.count() == 1


async def test_an_as_cannot_deregister_another_as(
    http: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    location = await _registered(http, tokens["as-a"], "AS-A")
    refused = await http.delete(location, headers=bearer(tokens["as-b"]))
    assert (refused.status_code, refused.json()["cause"]) == (403, "REGISTRATION_NOT_OWNED")
    assert await rt.store.registrations.count() == 1
    denied = [(e.actor, e.action) for e in await rt.store.audit.scan() if e.outcome == "denied"]
    assert ("as-b", "msgs.deregister") in denied


@pytest.mark.parametrize(
    "registration_id",
    ["00000000-0000-0000-0000-000000000000", "..%2f..%2fadmin", "x" * 5000, "1 OR 1=1", "%00"],
)
async def test_guessed_or_crafted_registration_ids_reveal_and_remove_nothing(
    http: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime, registration_id: str
) -> None:
    await _registered(http, tokens["as-a"], "AS-A")
    response = await http.delete(f"{BASE}/{registration_id}", headers=bearer(tokens["as-b"]))
    assert response.status_code in (400, 404), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "AS-A" not in response.text
    assert await rt.store.registrations.count() == 1


@pytest.mark.parametrize(
    "scope", ["mcx-registry", "mcx-service-registration", "mcx-access-profiles", "msgs-admin"]
)
async def test_a_token_for_another_api_cannot_register(
    http: httpx.AsyncClient, tokens: dict[str, str], mint: Mint, rt: Runtime, scope: str
) -> None:
    response = await http.post(BASE, json={"asSvcId": "AS-A"}, headers=bearer(mint("as-a", scope)))
    assert (response.status_code, response.json()["cause"]) == (403, "INSUFFICIENT_SCOPE")
    assert await rt.store.registrations.count() == 0
