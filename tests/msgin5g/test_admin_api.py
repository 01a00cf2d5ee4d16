"""msgs-admin/v1: operators list, show and remove registrations; responses checked against its document."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

import asgate.msgin5g
from asgate.system.runtime import Runtime
from tests import contract
from tests.conftest import Provision, TokenFor, bearer

SPEC = Path(asgate.msgin5g.__file__).parent / "admin-openapi.yaml"
ADMIN = "/msgs-admin/v1/registrations"


@pytest.fixture
async def ops(provision: Provision, token_for: TokenFor, http: httpx.AsyncClient) -> str:
    await provision("as-1", as_svc_ids=tuple(f"AS{i:02d}" for i in range(12)))
    await provision("ops", scopes=("msgs-admin",))
    token = await token_for("as-1")
    for i in range(12):
        body = {"asSvcId": f"AS{i:02d}", "asProf": {"appName": f"app {i}"}}
        assert (
            await http.post("/msgs-asregistration/v1/registrations", json=body, headers=bearer(token))
        ).status_code == 201
    return await token_for("ops")


async def get(http: httpx.AsyncClient, url: str, token: str, **params: object) -> httpx.Response:
    response = await http.get(url, params=params, headers=bearer(token))  # type: ignore[arg-type]
    contract.check(SPEC, response)
    return response


async def test_pages_follow_the_cursor_to_the_end(http: httpx.AsyncClient, ops: str) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        page = (await get(http, ADMIN, ops, limit=5, **({"after": cursor} if cursor else {}))).json()
        seen += [item["asSvcId"] for item in page["items"]]
        cursor = page.get("next")
        if cursor is None:
            break
    assert seen == [f"AS{i:02d}" for i in range(12)]


async def test_filters_and_show(http: httpx.AsyncClient, ops: str) -> None:
    (item,) = (await get(http, ADMIN, ops, **{"as-svc-id": "AS03"})).json()["items"]
    assert item["clientId"] == "as-1" and item["asProf"] == {"appName": "app 3"}
    shown = (await get(http, f"{ADMIN}/{item['registrationId']}", ops)).json()
    assert shown == item
    assert (await get(http, ADMIN, ops, **{"client-id": "nobody"})).json() == {"items": []}


async def test_evict_removes_and_audits_under_the_operator(
    http: httpx.AsyncClient, ops: str, rt: Runtime
) -> None:
    (item,) = (await get(http, ADMIN, ops, **{"as-svc-id": "AS05"})).json()["items"]
    response = await http.delete(f"{ADMIN}/{item['registrationId']}", headers=bearer(ops))
    contract.check(SPEC, response)
    assert response.status_code == 204
    missing = await get(http, f"{ADMIN}/{item['registrationId']}", ops)
    assert (missing.status_code, missing.json()["cause"]) == (404, "CONTEXT_NOT_FOUND")
    (event,) = await rt.store.audit.scan(
        resource=f"as-registration/{item['registrationId']}", action="msgs.deregister"
    )
    assert event.actor == "ops"


async def test_admin_needs_the_admin_scope_and_valid_query(
    http: httpx.AsyncClient, ops: str, token_for: TokenFor
) -> None:
    as_token = await token_for("as-1")
    refused = await get(http, ADMIN, as_token)
    assert (refused.status_code, refused.json()["cause"]) == (403, "INSUFFICIENT_SCOPE")
    bad = await get(http, ADMIN, ops, limit=0)
    assert (bad.status_code, bad.json()["cause"]) == (400, "INVALID_QUERY_PARAM")
    assert bad.json()["invalidParams"] == [
        {"param": "query limit", "reason": "must be an integer from 1 to 1000"}
    ]
