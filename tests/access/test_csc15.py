"""The access server's CSC-15 API (mcx-access-profiles/v1), in-process; responses checked against its
document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

import asgate.access
from asgate.access.csc15 import ProfileFetcher
from asgate.access.state import AccessState
from asgate.idm.internal import InternalTokens
from tests import contract
from tests.access.test_policy import profile
from tests.access.test_state import POOL
from tests.conftest import Mint, bearer

SPEC = Path(asgate.access.__file__).parent / "openapi" / "access-profiles.yaml"
API = "/mcx-access-profiles/v1"
ALICE = "alice@mc.example"


@pytest.fixture
def registry(mint: Mint) -> dict[str, str]:
    return bearer(mint("asgate-registry", "mcx-access-profiles"))


async def send(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    seq: int | None,
    prev: int | None,
    **kw: Any,
) -> httpx.Response:
    extra = {}
    if seq is not None:
        extra["Asgate-Sequence"] = str(seq)
    if prev is not None:
        extra["Asgate-Previous-Sequence"] = str(prev)
    response = await http.request(method, f"{API}{path}", headers={**headers, **extra}, **kw)
    contract.check(SPEC, response)
    return response


async def test_update_application_profile_pool_and_authorization(
    http: httpx.AsyncClient, registry: dict[str, str]
) -> None:
    pool = await send(http, "PUT", "/service-pools/GM/gms", registry, 1, 0, json=POOL)
    assert pool.status_code == 204 and pool.headers["asgate-sequence"] == "1"
    body = profile().dump()
    assert (await send(http, "PUT", "/app-profiles/p1", registry, 2, 1, json=body)).status_code == 204
    grant = {"appId": "console-1", "mcServiceId": "alice@mc.example"}
    assert (
        await send(http, "PUT", "/user-authorizations/console-1/alice@mc.example", registry, 4, 2, json=grant)
    ).status_code == 204
    state = (await send(http, "GET", "/state", registry, None, None)).json()
    assert state["sequence"] == 4 and [p["appProfileId"] for p in state["appProfiles"]] == ["p1"]
    assert state["userAuthorizations"][0]["mcServiceId"] == "alice@mc.example"
    # A retried push is not applied twice: 409 with the sequence held, for the registry to resume.
    retried = await send(http, "PUT", "/app-profiles/p1", registry, 2, 1, json=body)
    assert (retried.status_code, retried.headers["asgate-sequence"]) == (409, "4")
    assert retried.json()["currentSequence"] == 4 and retried.json()["cause"] == "SEQUENCE_MISMATCH"
    assert (await send(http, "DELETE", "/app-profiles/p1", registry, 5, 4)).status_code == 204
    assert (await send(http, "GET", "/state", registry, None, None)).json()["appProfiles"] == []


async def test_a_batch_applies_in_order(http: httpx.AsyncClient, registry: dict[str, str]) -> None:
    changes = [
        {"sequence": 3, "kind": "service-pool", "key": "GM/gms", "op": "PUT", "payload": POOL},
        {"sequence": 6, "kind": "app-profile", "key": "p1", "op": "PUT", "payload": profile().dump()},
        {"sequence": 7, "kind": "app-profile", "key": "p1", "op": "DELETE"},
        {
            "sequence": 9,
            "kind": "app-profile",
            "key": "p2",
            "op": "PUT",
            "payload": profile(appProfileId="p2", appProfileIndex=2).dump(),
        },
    ]
    response = await send(
        http, "POST", "/changes", registry, None, None, json={"previousSequence": 0, "changes": changes}
    )
    assert response.status_code == 204
    state = (await send(http, "GET", "/state", registry, None, None)).json()
    assert state["sequence"] == 9 and [p["appProfileIndex"] for p in state["appProfiles"]] == [2]


async def test_a_gap_is_409_and_bad_input_400(
    http: httpx.AsyncClient, registry: dict[str, str], mint: Mint
) -> None:
    gap = await send(http, "DELETE", "/app-profiles/p1", registry, 9, 8)
    assert (gap.status_code, gap.json()["cause"], gap.json()["currentSequence"]) == (
        409,
        "SEQUENCE_MISMATCH",
        0,
    )
    missing = await send(http, "DELETE", "/app-profiles/p1", registry, None, 0)
    assert (missing.status_code, missing.json()["invalidParams"][0]["param"]) == (
        400,
        "header asgate-sequence",
    )
    bad_pool = await send(http, "PUT", "/service-pools/GM/gms", registry, 1, 0, json={"serviceType": "GM"})
    assert bad_pool.status_code == 400 and bad_pool.json()["cause"] == "MANDATORY_IE_MISSING"
    batch = {
        "previousSequence": 0,
        "changes": [{"sequence": 1, "kind": "app-profile", "key": "p", "op": "PUT", "payload": {"x": 1}}],
    }
    bad_batch = await send(http, "POST", "/changes", registry, None, None, json=batch)
    assert (
        bad_batch.status_code == 400 and bad_batch.json()["invalidParams"][0]["param"] == "/changes/0/payload"
    )
    app = await send(http, "GET", "/state", bearer(mint("console-1", "mcx-registry")), None, None)
    assert (app.status_code, app.json()["cause"]) == (403, "INSUFFICIENT_SCOPE")


async def test_deletions_and_open_grants_carry_null_and_are_accepted(
    http: httpx.AsyncClient, registry: dict[str, str]
) -> None:
    """What the registry's pusher really sends: null payloads for deletions, null for "all services"."""
    changes = [
        {"sequence": 1, "kind": "service-pool", "key": "GM/gms", "op": "PUT", "payload": POOL},
        {"sequence": 2, "kind": "user-authorization", "key": "console-1/alice", "op": "PUT",
         "payload": {"appId": "console-1", "mcServiceId": "alice", "services": None}},
        {"sequence": 3, "kind": "service-pool", "key": "GM/gms", "op": "DELETE", "payload": None},
    ]  # fmt: skip
    response = await send(
        http, "POST", "/changes", registry, None, None, json={"previousSequence": 0, "changes": changes}
    )
    assert response.status_code == 204, response.text
    grant = {"appId": "console-1", "mcServiceId": "bob", "services": None}
    assert (
        await send(http, "PUT", "/user-authorizations/console-1/bob", registry, 4, 3, json=grant)
    ).status_code == 204
    state = (await send(http, "GET", "/state", registry, None, None)).json()
    assert state["sequence"] == 4 and state["servicePools"] == []


async def test_a_miss_fetches_the_application_from_the_registry_once(
    http: httpx.AsyncClient, rt: Any, mint: Mint
) -> None:
    """Issue 14: the fetcher asks the real registry (in-process) and is bounded: a negative answer is
    remembered for negative_ttl, and at most `rate` fetches a second are made."""
    now = [1000.0]
    tokens = InternalTokens(
        rt.keyring,
        issuer=rt.settings.token_issuer,
        audience=rt.settings.token_audience,
        subject="asgate-access",
        scope="mcx-access-profiles",
    )
    state = AccessState()
    fetcher = ProfileFetcher(
        state, http, "http://testserver", tokens, rate=2.0, negative_ttl=5.0, clock=lambda: now[0]
    )
    ops = bearer(mint("ops", "mcx-registry-admin"))
    spec = {"allowedServices": [{"serviceType": "GM"}]}
    assert (await http.put("/mcx-registry-admin/v1/apps/console-1", json=spec, headers=ops)).is_success
    assert fetcher.wanted("console-1", "PROFILE_NOT_AUTHORIZED")
    assert not fetcher.wanted("console-1", "MC_USER_REQUIRED")  # not a matter of CSC-15 state
    await fetcher.fetch("console-1")  # the registry has nothing for it yet: a negative answer
    assert fetcher.fetches == 1 and not fetcher.wanted("console-1", "USER_NOT_AUTHORIZED")
    grant = await http.put(f"/mcx-registry-admin/v1/grants/console-1/{ALICE}", json={}, headers=ops)
    assert grant.status_code == 201
    now[0] += 5.0  # the negative answer expired
    assert fetcher.wanted("console-1", "USER_NOT_AUTHORIZED")
    await fetcher.fetch("console-1")
    assert ("console-1", ALICE) in state.grants and state.fetched["console-1"] > state.seq
    # The budget: 2 a second. Unknown applications spend it, then nothing is fetched until it refills.
    await fetcher.fetch("nobody-1")
    assert not fetcher.wanted("nobody-2", "PROFILE_NOT_AUTHORIZED")
    await fetcher.fetch("nobody-2")
    assert fetcher.fetches == 3
    now[0] += 0.5
    assert fetcher.wanted("nobody-2", "PROFILE_NOT_AUTHORIZED")
