"""Trust boundary: MC service → service registry server (issue 8 item 1, pool ownership).

A service client serves only the pools the administrator provisioned for it, checked at every write
and heartbeat against the provisioning as it is now; what an instance describes reaches applications
(their profiles, hence what the SAS lets through) only as far as the administrator approved it for
the pool. Each test is one attack class: the refusal the service sees, the audit row the operator
sees, and that nothing was stored or widened.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from asgate.kernel.settings import Settings
from asgate.store import AuditEvent
from asgate.system.runtime import Runtime
from tests.access.system import System, registration_for, running_system
from tests.conftest import Mint, Provision, bearer
from tests.registry.conftest import ADMIN, REGISTRY, SERVICES, admin_app, admin_grant, gm_registration

SCOPE = "mcx-service-registration"
ALICE = "alice@mc.example"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Fast liveness, so that a revoked instance is seen suspended and removed within a test."""
    return make_settings(
        registry_missed_heartbeats=1, registry_removal_grace=0.5, registry_sweep_interval=0.05
    )


async def denials(rt: Runtime, action: str) -> list[AuditEvent]:
    return [e for e in await rt.store.audit.scan(limit=1000, action=action) if e.outcome == "denied"]


def refused_for_pool(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["cause"] == "POOL_NOT_PROVISIONED"


async def register_as(http: httpx.AsyncClient, token: str, **overrides: Any) -> httpx.Response:
    return await http.post(SERVICES, json=gm_registration(**overrides), headers=bearer(token))


async def test_registering_into_a_pool_not_provisioned_is_refused_and_stores_nothing(
    http: httpx.AsyncClient, rt: Runtime, provision: Provision, mint: Mint
) -> None:
    await provision("rogue", scopes=(SCOPE,), service_pools=("CM/*",))  # another pool's client
    await provision("bare", scopes=(SCOPE,))  # the scope alone serves nothing (the default)
    for client_id in ("rogue", "bare"):
        refused_for_pool(await register_as(http, mint(client_id, SCOPE), name="gm-north"))
    assert await rt.store.registry.instances() == []
    assert await rt.store.registry.changes(0) == []  # no pool change reached the change log (CSC-15)
    rows = await denials(rt, "service.register")
    assert [(e.actor, e.resource) for e in rows] == [
        ("rogue", "service-pool/GM/gm-north"),
        ("bare", "service-pool/GM/gm-north"),
    ]
    assert all(e.reason and e.reason.startswith("POOL_NOT_PROVISIONED") for e in rows)


async def test_a_pattern_covers_one_whole_part_never_a_prefix(
    http: httpx.AsyncClient, rt: Runtime, provision: Provision, mint: Mint
) -> None:
    await provision("gms-1", scopes=(SCOPE,), service_pools=("GM/*",))
    token = mint("gms-1", SCOPE)
    refused_for_pool(await register_as(http, token, serviceType="GMX", name="a"))
    refused_for_pool(await register_as(http, token, serviceType="CM", name="gm-north"))
    # A name is never a path: "GM/*" does not reach "GM/a/b" (the name is refused as malformed).
    assert (await register_as(http, token, name="a/b")).status_code == 400
    assert await rt.store.registry.instances() == []
    assert (await register_as(http, token, name="gm-north")).status_code == 201  # what GM/* is for
    assert [r.pool for r in await rt.store.registry.instances()] == [("GM", "gm-north")]


async def test_moving_an_instance_into_a_pool_not_provisioned_is_refused(
    http: httpx.AsyncClient, rt: Runtime, provision: Provision, mint: Mint
) -> None:
    await provision("gms-1", scopes=(SCOPE,), service_pools=("GM/gm-north",))
    token = mint("gms-1", SCOPE)
    location = (await register_as(http, token, name="gm-north")).headers["location"]
    moved = await http.put(location, json=gm_registration(name="gm-south"), headers=bearer(token))
    refused_for_pool(moved)
    [record] = await rt.store.registry.instances()
    assert (record.pool, record.version) == (("GM", "gm-north"), 1)  # unchanged
    assert [e.resource for e in await denials(rt, "service.update")] == ["service-pool/GM/gm-south"]


async def test_after_revocation_update_heartbeat_and_deregister_are_refused_and_liveness_removes_it(
    http: httpx.AsyncClient, rt: Runtime, provision: Provision, mint: Mint
) -> None:
    await provision("gms-1", scopes=(SCOPE,), service_pools=("GM/gm-north",))
    token = mint("gms-1", SCOPE)  # issued before the revocation, still valid after it
    location = (await register_as(http, token, name="gm-north", heartbeatPeriod=1)).headers["location"]
    [before] = await rt.store.registry.instances()
    await rt.store.write(
        lambda tx: tx.clients.update("gms-1", service_pools=())
    )  # `asgate clients update --remove-pool`
    wider = gm_registration(name="gm-north", heartbeatPeriod=1, environment={"region": "south"})
    refused_for_pool(await http.put(location, json=wider, headers=bearer(token)))
    refused_for_pool(await http.put(f"{location}/heartbeat", headers=bearer(token)))
    refused_for_pool(await http.delete(location, headers=bearer(token)))
    after = await rt.store.registry.instance(before.service_instance_id)
    assert after is not None
    assert (after.version, after.registration, after.last_heartbeat) == (
        before.version,
        before.registration,
        before.last_heartbeat,
    )  # nothing written: no new description, no heartbeat, not deregistered by a revoked client
    for action in ("service.update", "service.heartbeat", "service.deregister"):
        assert [(e.actor, e.resource) for e in await denials(rt, action)] == [
            ("gms-1", "service-pool/GM/gm-north")
        ]
    # It cannot keep its instance alive: liveness suspends and then removes it (docs/operations.md).
    async with asyncio.timeout(10):
        while True:  # it keeps heart-beating, refused every time, until the sweeper removed it
            beat = await http.put(f"{location}/heartbeat", headers=bearer(token))
            if beat.status_code == 404:
                break
            refused_for_pool(beat)
            await asyncio.sleep(0.1)
    assert await rt.store.registry.instance(before.service_instance_id) is None
    actions = [e.action for e in await rt.store.audit.scan(limit=1000) if e.actor == "registry"]
    assert actions == ["service.suspend", "service.remove"]


async def test_another_client_of_the_same_pool_cannot_touch_an_instance_it_did_not_register(
    http: httpx.AsyncClient, rt: Runtime, provision: Provision, mint: Mint
) -> None:
    for client_id in ("gms-1", "gms-2"):  # both may serve the pool
        await provision(client_id, scopes=(SCOPE,), service_pools=("GM/gm-north",))
    location = (await register_as(http, mint("gms-1", SCOPE), name="gm-north")).headers["location"]
    other = bearer(mint("gms-2", SCOPE))
    for response in (
        await http.put(location, json=gm_registration(name="gm-north", port=9999), headers=other),
        await http.put(f"{location}/heartbeat", headers=other),
        await http.delete(location, headers=other),
    ):
        assert (response.status_code, response.json()["cause"]) == (403, "INSTANCE_NOT_OWNED")
    [record] = await rt.store.registry.instances()
    assert (record.client_id, record.version, record.registration.interfaces[0].port) == ("gms-1", 1, 9101)


async def test_a_new_pools_first_description_is_pending_until_approved_and_a_stale_approval_fails(
    http: httpx.AsyncClient, rt: Runtime, provision: Provision, mint: Mint
) -> None:
    await provision("gms-1", scopes=(SCOPE,), service_pools=("GM/gm-new",))
    ops, console = mint("ops", "mcx-registry-admin"), mint("console-1", "mcx-registry")
    await admin_app(http, ops, "console-1")
    await admin_grant(http, ops, "console-1", ALICE)
    token = mint("gms-1", SCOPE)
    location = (await register_as(http, token, name="gm-new")).headers["location"]
    found = await http.get(
        f"{REGISTRY}/service-information", params={"mc-service-id": ALICE}, headers=bearer(console)
    )
    assert "versions" not in found.json()["serviceInformation"][0]  # nothing discovered yet
    ask = {
        "mcServiceId": ALICE,
        "requestType": "AUTHORIZE",
        "servicesCapabilitiesInformation": [{"serviceType": "GM", "capabilities": ["groups"]}],
    }
    refused = await http.post(f"{REGISTRY}/authorizations", json=ask, headers=bearer(console))
    assert (refused.status_code, refused.json()["cause"]) == (403, "CAPABILITY_NOT_FOUND")
    assert await rt.store.registry.profiles() == []
    listed = (await http.get(f"{ADMIN}/pools", params={"state": "PENDING"}, headers=bearer(ops))).json()
    [pending] = listed["items"]
    assert (pending["serviceName"], pending["additions"][0]) == ("gm-new", "v1: new API version")
    # The service widens again before the administrator approves what was listed: 412, nothing approved.
    wider = gm_registration(name="gm-new")
    wider["versions"][0]["resources"].append(
        {"resourceName": "admin", "uri": "/admin", "commType": "REQUEST_RESPONSE"}
    )
    assert (await http.put(location, json=wider, headers=bearer(token))).status_code == 200
    stale = await http.post(
        f"{ADMIN}/pools/GM/gm-new/approve", headers={**bearer(ops), "If-Match": f'"{pending["digest"]}"'}
    )
    assert (stale.status_code, stale.json()["cause"]) == (412, "PRECONDITION_FAILED")
    assert (await rt.store.pools.interfaces()) == {}
    assert await denials(rt, "pool.approve") == [] and not await rt.store.audit.scan(action="pool.approve")
    # Rejected: applications still see nothing of it, and it is no longer pending.
    rejected = await http.post(f"{ADMIN}/pools/GM/gm-new/reject", headers=bearer(ops))
    assert rejected.json()["state"] == "REJECTED"
    assert (await http.get(f"{ADMIN}/pools", params={"state": "PENDING"}, headers=bearer(ops))).json() == {
        "items": []
    }
    assert [e.actor for e in await rt.store.audit.scan(action="pool.reject")] == ["ops"]
    refused = await http.post(f"{REGISTRY}/authorizations", json=ask, headers=bearer(console))
    assert refused.status_code == 403
    # Offered again (here: the first description back), it is pending again; approved, it is seen.
    assert (
        await http.put(location, json=gm_registration(name="gm-new"), headers=bearer(token))
    ).status_code == 200
    approved = await http.post(f"{ADMIN}/pools/GM/gm-new/approve", headers=bearer(ops))
    assert approved.json()["state"] == "APPROVED", approved.text
    granted = await http.post(f"{REGISTRY}/authorizations", json=ask, headers=bearer(console))
    assert granted.status_code == 200, granted.text
    [event] = await rt.store.audit.scan(action="pool.approve")
    assert event.actor == "ops" and event.details and "v1: new API version" in event.details["additions"]


# ---------------------------------------------------------------- through the SAS


@pytest.fixture
async def system(make_settings: Callable[..., Settings]) -> AsyncIterator[System]:
    async with running_system(make_settings) as started:
        yield started


@pytest.mark.slow
@pytest.mark.xdist_group("sas-system")
@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_widening_reaches_no_application_until_approved_and_a_narrowing_applies_at_once(
    system: System,
) -> None:
    profile = await system.authorize("GM", serviceName="recorder")
    base, profile_id = profile["serviceLocationInformation"], profile["appProfileId"]
    [instance] = await system.rt.store.registry.instances(client_id="recorder")
    location = f"{system.api}{SERVICES}/{instance.service_instance_id}"
    service = bearer(system.tokens.issue(subject="recorder", client_id="recorder", scopes=[SCOPE])[0])
    ops = bearer(system.app_token("ops", "mcx-registry-admin"))
    user = bearer(system.user_token())
    original = registration_for(system.recorder).dump()
    wider = registration_for(system.recorder).dump()
    wider["versions"][0]["resources"][0]["operations"].append("DELETE")
    wider["versions"][0]["resources"].append(
        {"resourceName": "admin", "uri": "/admin", "commType": "REQUEST_RESPONSE", "operations": ["GET"]}
    )
    # The pool's own (provisioned) client widens its description: accepted, but pending.
    assert (await system.http.put(location, json=wider, headers=service)).status_code == 200
    current = await system.http.get(
        f"{system.api}{REGISTRY}/app-profiles/{profile_id}", headers=bearer(system.app_token())
    )
    assert current.json() == profile  # no new version, nothing widened
    for method, path, cause in (
        ("GET", "/admin", "RESOURCE_NOT_AUTHORIZED"),
        ("DELETE", "/items", "OPERATION_NOT_AUTHORIZED"),
    ):
        refused = await system.http.request(method, f"{base}{path}", headers=user)
        assert (refused.status_code, refused.json()["cause"]) == (403, cause)
    assert system.recorder.requests == []  # nothing reached the instance
    [pending] = (await system.http.get(f"{system.api}{ADMIN}/pools?state=PENDING", headers=ops)).json()[
        "items"
    ]
    assert pending["additions"] == ["v1: resource items: adds DELETE", "v1: resource admin /admin (GET): new"]
    assert [e.actor for e in await system.rt.store.audit.scan(action="pool.pending")] == ["recorder"]
    # The administrator approves what was listed: the profile widens (a new version) and the SAS follows.
    approve = await system.http.post(
        f"{system.api}{ADMIN}/pools/GM/recorder/approve",
        headers={**ops, "If-Match": f'"{pending["digest"]}"'},
    )
    assert approve.status_code == 200, approve.text
    widened = (
        await system.http.get(
            f"{system.api}{REGISTRY}/app-profiles/{profile_id}", headers=bearer(system.app_token())
        )
    ).json()
    names = [r["resourceName"] for r in widened["serviceInterfaceDescription"]["versions"][0]["resources"]]
    assert (widened["version"], names) == (profile["version"] + 1, ["items", "item", "admin"])
    await system.until_routed(widened)
    assert (await system.http.get(f"{base}/admin", headers=user)).status_code == 204
    assert [r.path for r in system.recorder.requests] == ["/rec/admin"]
    # Narrowing applies at once: no approval needed, the profile and the SAS narrow together.
    assert (await system.http.put(location, json=original, headers=service)).status_code == 200
    narrowed = (
        await system.http.get(
            f"{system.api}{REGISTRY}/app-profiles/{profile_id}", headers=bearer(system.app_token())
        )
    ).json()
    assert narrowed["version"] == widened["version"] + 1
    await system.until_routed(narrowed)
    refused = await system.http.get(f"{base}/admin", headers=user)
    assert (refused.status_code, refused.json()["cause"]) == (403, "RESOURCE_NOT_AUTHORIZED")
    assert len(system.recorder.requests) == 1
