"""Who may do what (TS 23.554 8.2.5 step 2, 8.2.6 step 3): a table of callers and outcomes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from asgate.system.runtime import Runtime
from tests import contract
from tests.conftest import Provision, TokenFor, bearer, official_3gpp

BASE = "/msgs-asregistration/v1/registrations"


@pytest.fixture
async def tokens(provision: Provision, token_for: TokenFor) -> dict[str, str]:
    await provision("as-a", as_svc_ids=("AS-A",))
    await provision("as-b", as_svc_ids=("AS-B",))
    await provision("ops", scopes=("msgs-admin",))
    return {
        "as-a": await token_for("as-a"),
        "as-b": await token_for("as-b"),
        "ops": await token_for("ops"),
        "none": "",
        "garbage": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln",
    }


@pytest.fixture
def spec() -> Path:
    return official_3gpp("TS29538_MSGS_ASRegistration.yaml")


REGISTER_CASES = [
    # caller,    asSvcId, status, cause
    ("as-a", "AS-A", 201, None),
    ("as-a", "AS-B", 403, "AS_SVC_ID_NOT_ALLOWED"),  # provisioned for another AS
    ("as-a", "AS-X", 403, "AS_SVC_ID_NOT_ALLOWED"),  # provisioned for nobody
    ("ops", "AS-A", 403, "INSUFFICIENT_SCOPE"),  # a valid token without msgs-asregistration
    ("none", "AS-A", 401, "INVALID_TOKEN"),
    ("garbage", "AS-A", 401, "INVALID_TOKEN"),
]


@pytest.mark.parametrize(("caller", "as_svc_id", "status", "cause"), REGISTER_CASES)
async def test_who_may_register_which_as_svc_id(
    http: httpx.AsyncClient,
    tokens: dict[str, str],
    spec: Path,
    rt: Runtime,
    caller: str,
    as_svc_id: str,
    status: int,
    cause: str | None,
) -> None:
    headers = bearer(tokens[caller]) if tokens[caller] else {}
    response = await http.post(BASE, json={"asSvcId": as_svc_id}, headers=headers)
    contract.check(spec, response)
    assert response.status_code == status
    if cause:
        assert response.json()["cause"] == cause
        assert await rt.store.registrations.count() == 0
    if status == 401:
        assert response.headers["www-authenticate"].startswith('Bearer realm="asgate"')
    if cause == "INSUFFICIENT_SCOPE":
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


DEREGISTER_CASES = [
    ("as-a", 200, None),
    ("as-b", 403, "REGISTRATION_NOT_OWNED"),
    ("ops", 403, "INSUFFICIENT_SCOPE"),
    ("none", 401, "INVALID_TOKEN"),
]


@pytest.mark.parametrize(("caller", "status", "cause"), DEREGISTER_CASES)
async def test_only_the_registering_as_may_deregister(
    http: httpx.AsyncClient,
    tokens: dict[str, str],
    spec: Path,
    rt: Runtime,
    caller: str,
    status: int,
    cause: str | None,
) -> None:
    location = (await http.post(BASE, json={"asSvcId": "AS-A"}, headers=bearer(tokens["as-a"]))).headers[
        "location"
    ]
    headers = bearer(tokens[caller]) if tokens[caller] else {}
    response = await http.delete(location, headers=headers)
    contract.check(spec, response)
    assert response.status_code == status
    assert await rt.store.registrations.count() == (0 if status == 200 else 1)
    if cause:
        assert response.json()["cause"] == cause


async def test_refusals_are_audited_with_their_reason(
    http: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    await http.post(BASE, json={"asSvcId": "AS-B"}, headers=bearer(tokens["as-a"]))
    location = (await http.post(BASE, json={"asSvcId": "AS-A"}, headers=bearer(tokens["as-a"]))).headers[
        "location"
    ]
    await http.delete(location, headers=bearer(tokens["as-b"]))
    denied = [(e.actor, e.action, e.reason) for e in await rt.store.audit.scan() if e.outcome == "denied"]
    assert denied == [
        ("as-a", "msgs.register", "AS Service ID not provisioned"),
        ("as-b", "msgs.deregister", "not the owner"),
    ]


async def test_a_removed_client_can_register_nothing(
    http: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    await rt.store.write(lambda tx: tx.clients.remove("as-a"))
    response = await http.post(BASE, json={"asSvcId": "AS-A"}, headers=bearer(tokens["as-a"]))
    assert (response.status_code, response.json()["cause"]) == (403, "AS_SVC_ID_NOT_ALLOWED")
