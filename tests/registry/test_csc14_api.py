"""CSC-14 (mcx-registry/v1): seed procedures 10.X.3 and 10.X.4 step by step, with a real HTTP
notification receiver; every response checked against the API's document."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from asgate.system.runtime import Runtime
from tests import contract
from tests.conftest import bearer
from tests.receiver import Receiver
from tests.registry.conftest import ADMIN, DOCS, REGISTRY, admin_app, admin_grant, gm_registration, register

SPEC = DOCS / "registry.yaml"
ALICE = "alice@mc.example"


async def call(http: httpx.AsyncClient, method: str, url: str, token: str, **kw: Any) -> httpx.Response:
    response = await http.request(method, url, headers=bearer(token), **kw)
    contract.check(SPEC, response)
    return response


def authorize_body(receiver: Receiver | None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "mcServiceId": ALICE,
        "requestType": "AUTHORIZE",
        "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
    }
    if receiver is not None:
        body["notificationDestination"] = receiver.url
    body.update(overrides)
    return body


@pytest.fixture
async def world(http: httpx.AsyncClient, tokens: dict[str, str]) -> dict[str, str]:
    """A GM pool of one instance, a CM instance, console-1 allowed GM, alice granted for console-1."""
    assert (await register(http, tokens["gms-1"], gm_registration())).status_code == 201
    cm = gm_registration(port=9201, name="cms", serviceType="CM")
    cm["interfaces"][0] |= {"referencePoint": "CSC-4", "apiPrefix": "/cm"}
    assert (await register(http, tokens["gms-2"], cm)).status_code == 201
    assert (await admin_app(http, tokens["ops"], "console-1", maxPriority="mcpttp.10")).status_code == 201
    assert (await admin_grant(http, tokens["ops"], "console-1", ALICE)).status_code == 201
    return tokens


async def test_10x3_configuration_of_the_external_application(
    http: httpx.AsyncClient, world: dict[str, str], receiver: Receiver, rt: Runtime
) -> None:
    app = world["console-1"]
    # Steps 1-2: get service information, narrowed by criteria.
    info = await call(
        http,
        "GET",
        f"{REGISTRY}/service-information",
        app,
        params={"mc-service-id": ALICE, "service-type": "GM"},
    )
    assert info.status_code == 200
    (gm,) = info.json()["serviceInformation"]
    assert (gm["serviceType"], gm["serviceName"], gm["referencePoints"], gm["availableInstances"]) == (
        "GM",
        "gms",
        ["CSC-2"],
        1,
    )
    assert "interfaces" not in gm  # an untrusted application never sees a backend address
    assert {r["resourceName"] for r in gm["versions"][0]["resources"]} == {"groups", "members"}
    # Step 3: update external application authorization (AUTHORIZE).
    response = await call(http, "POST", f"{REGISTRY}/authorizations", app, json=authorize_body(receiver))
    assert response.status_code == 200
    # Steps 4-5: granted, stored as an application profile, returned with the SAS as location.
    body = response.json()
    assert body["result"] == "SUCCESS"
    (profile,) = body["applicationProfiles"]
    assert (
        profile["authorizedService"] == "GM" and profile["appId"] == "console-1" and profile["version"] == 1
    )
    assert (
        profile["serviceLocationInformation"]
        == f"http://{rt.settings.sas_listen}/{profile['appProfileIndex']}"
    )
    assert profile["serviceInterfaceDescription"]["maxPriority"] == "mcpttp.10"
    # Step 6: the update for every service access server is queued in order (CSC-15).
    changes = await rt.store.registry.changes(0, kinds=["app-profile"])
    assert [(c.key, c.op, c.payload["version"] if c.payload else None) for c in changes] == [
        (profile["appProfileId"], "PUT", 1)
    ]
    # The application is subscribed to updates of its profile.
    subscription = await rt.store.registry.subscription("console-1")
    assert subscription is not None and subscription.notification_destination == receiver.url
    # Get application profile: its own only.
    own = await call(http, "GET", f"{REGISTRY}/app-profiles/{profile['appProfileId']}", app)
    assert own.json() == profile and own.headers["etag"] == '"1"'
    other = await call(http, "GET", f"{REGISTRY}/app-profiles/{profile['appProfileId']}", world["console-2"])
    assert (other.status_code, other.json()["cause"]) == (404, "CONTEXT_NOT_FOUND")


async def test_10x4_reconfiguration_after_an_administrator_edit(
    http: httpx.AsyncClient, world: dict[str, str], receiver: Receiver
) -> None:
    app = world["console-1"]
    profile = (
        await call(http, "POST", f"{REGISTRY}/authorizations", app, json=authorize_body(receiver))
    ).json()["applicationProfiles"][0]
    # Step 1: the administrator updates the application profile (restricts it to "groups").
    url = f"{ADMIN}/app-profiles/{profile['appProfileId']}"
    groups = {
        "resourceName": "groups",
        "uri": "/groups",
        "commType": "REQUEST_RESPONSE",
        "operations": ["GET"],
    }
    edit = {"maxPriority": "mcpttp.12", "versions": [{"apiVersion": "v1", "resources": [groups]}]}
    edited = await http.put(url, json=edit, headers={**bearer(world["ops"]), "If-Match": '"1"'})
    assert edited.status_code == 200 and edited.json()["version"] == 2
    # Steps 2-3: the registry notifies the application, which answers 2xx.
    (note,) = await receiver.wait_for(lambda r: len(r) >= 1)
    assert note["appProfileId"] == profile["appProfileId"] and note["version"] == 2
    assert note["appProfileRef"].endswith(f"/mcx-registry/v1/app-profiles/{profile['appProfileId']}")
    # Steps 4-5: the application gets the updated profile through the pointer.
    path = "/" + note["appProfileRef"].split("/", 3)[3]
    updated = (await call(http, "GET", path, app)).json()
    assert updated["version"] == 2
    assert updated["serviceInterfaceDescription"]["maxPriority"] == "mcpttp.12"
    assert [
        r["resourceName"] for r in updated["serviceInterfaceDescription"]["versions"][0]["resources"]
    ] == ["groups"]
    # The reference to an earlier version still answers.
    first = await call(http, "GET", path, app, params={"version": 1})
    assert first.json()["version"] == 1
    # A stale conditional edit is refused.
    stale = await http.put(url, json=edit, headers={**bearer(world["ops"]), "If-Match": '"1"'})
    assert (stale.status_code, stale.json()["cause"]) == (412, "PRECONDITION_FAILED")


@pytest.mark.parametrize(
    ("caller", "body", "cause"),
    [
        ("console-1", {"mcServiceId": "bob@mc.example"}, "USER_NOT_AUTHORIZED"),
        ("console-1", {"servicesCapabilitiesInformation": [{"serviceType": "CM"}]}, "SERVICE_NOT_ALLOWED"),
        ("console-1", {"servicesCapabilitiesInformation": [{"serviceType": "KM"}]}, "SERVICE_NOT_FOUND"),
        (
            "console-1",
            {"servicesCapabilitiesInformation": [{"serviceType": "GM", "capabilities": ["nope"]}]},
            "CAPABILITY_NOT_FOUND",
        ),
        (
            "console-1",
            {"servicesCapabilitiesInformation": [{"serviceType": "GM", "apiVersion": "v9"}]},
            "VERSION_NOT_FOUND",
        ),
        ("console-2", {}, "APP_NOT_REGISTERED"),
        ("console-1", {"notificationDestination": "http://169.254.169.254/x"}, "URI_NOT_ALLOWED"),
    ],
)
async def test_authorization_refusals(
    http: httpx.AsyncClient, world: dict[str, str], rt: Runtime, caller: str, body: dict[str, Any], cause: str
) -> None:
    response = await call(
        http, "POST", f"{REGISTRY}/authorizations", world[caller], json=authorize_body(None, **body)
    )
    # A refused URI is a bad value (400, the field named); the others are decisions (403).
    status = 400 if cause == "URI_NOT_ALLOWED" else 403
    assert (response.status_code, response.json()["cause"]) == (status, cause)
    assert await rt.store.registry.profiles() == []


async def test_refused_decisions_are_audited_with_their_reason(
    http: httpx.AsyncClient, world: dict[str, str], rt: Runtime
) -> None:
    await call(
        http,
        "POST",
        f"{REGISTRY}/authorizations",
        world["console-1"],
        json=authorize_body(None, mcServiceId="bob@mc.example"),
    )
    (event,) = await rt.store.audit.scan(action="authorization.decide")
    assert (event.actor, event.outcome, event.resource) == ("console-1", "denied", "service/GM/gms")
    assert event.reason is not None and event.reason.startswith("USER_NOT_AUTHORIZED")


async def test_partial_success_and_capability_limits(http: httpx.AsyncClient, world: dict[str, str]) -> None:
    ops = world["ops"]
    await admin_app(
        http, ops, "console-1", allowedServices=[{"serviceType": "GM", "capabilities": ["groups"]}]
    )
    body = authorize_body(
        None, servicesCapabilitiesInformation=[{"serviceType": "GM"}, {"serviceType": "CM"}]
    )
    response = await call(http, "POST", f"{REGISTRY}/authorizations", world["console-1"], json=body)
    assert response.json()["result"] == "PARTIAL_SUCCESS"
    assert [f["cause"] for f in response.json()["failures"]] == ["SERVICE_NOT_ALLOWED"]
    (profile,) = response.json()["applicationProfiles"]
    assert [
        r["resourceName"] for r in profile["serviceInterfaceDescription"]["versions"][0]["resources"]
    ] == ["groups"]
    beyond = authorize_body(
        None, servicesCapabilitiesInformation=[{"serviceType": "GM", "capabilities": ["members"]}]
    )
    refused = await call(http, "POST", f"{REGISTRY}/authorizations", world["console-1"], json=beyond)
    assert refused.json()["cause"] == "CAPABILITY_NOT_ALLOWED"


async def test_discovery_filters_grants_and_trust(http: httpx.AsyncClient, world: dict[str, str]) -> None:
    app, url = world["console-1"], f"{REGISTRY}/service-information"

    async def names(**params: Any) -> list[str]:
        response = await call(http, "GET", url, app, params={"mc-service-id": ALICE, **params})
        assert response.status_code == 200
        return [s["serviceName"] for s in response.json()["serviceInformation"]]

    assert await names() == ["gms"]  # CM exists but console-1 may not use it
    assert await names(
        **{"reference-point": "CSC-2", "protocol": "http", "api-version": "v1", "capability": "members"}
    ) == ["gms"]
    assert await names(**{"reference-point": "CSC-4"}) == []
    assert await names(environment="region:north") == ["gms"]
    assert await names(environment="region:south") == []
    nobody = await call(http, "GET", url, app, params={"mc-service-id": "bob@mc.example"})
    assert nobody.json() == {"serviceInformation": []}
    missing = await call(http, "GET", url, app)
    assert (missing.status_code, missing.json()["invalidParams"][0]["param"]) == (400, "query mc-service-id")
    # A trusted-domain application (seed Option 1) sees the instances and gets them as location.
    await admin_app(http, world["ops"], "console-1", trustDomain="TRUSTED")
    trusted = await call(http, "GET", url, app, params={"mc-service-id": ALICE})
    assert trusted.json()["serviceInformation"][0]["interfaces"][0]["port"] == 9101
    profile = (await call(http, "POST", f"{REGISTRY}/authorizations", app, json=authorize_body(None))).json()
    assert profile["applicationProfiles"][0]["serviceLocationInformation"] == "http://127.0.0.1:9101/gm"


async def test_remove_withdraws_profiles_and_unsubscribes(
    http: httpx.AsyncClient, world: dict[str, str], receiver: Receiver, rt: Runtime
) -> None:
    app = world["console-1"]
    profile = (
        await call(http, "POST", f"{REGISTRY}/authorizations", app, json=authorize_body(receiver))
    ).json()["applicationProfiles"][0]
    removed = await call(
        http, "POST", f"{REGISTRY}/authorizations", app, json=authorize_body(None, requestType="REMOVE")
    )
    assert removed.json() == {"result": "SUCCESS", "applicationProfiles": []}
    assert (
        await call(http, "GET", f"{REGISTRY}/app-profiles/{profile['appProfileId']}", app)
    ).status_code == 404
    assert await rt.store.registry.subscription("console-1") is None
    changes = await rt.store.registry.changes(0, kinds=["app-profile"])
    assert [c.op for c in changes] == ["PUT", "DELETE"]


async def test_the_notification_socket_answers_a_plain_get_with_426(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    # The resource exists, as a WebSocket: a client that forgot to upgrade is told so, not 404.
    plain = await call(http, "GET", f"{REGISTRY}/notifications", tokens["console-1"])
    assert (plain.status_code, plain.headers["upgrade"]) == (426, "websocket")
    assert plain.headers["content-type"] == "application/problem+json"
    anonymous = await http.get(f"{REGISTRY}/notifications")
    assert anonymous.status_code == 401


async def test_notifications_are_retried_with_backoff_until_acknowledged(
    http: httpx.AsyncClient, world: dict[str, str], receiver: Receiver, rt: Runtime
) -> None:
    profile = (
        await call(
            http, "POST", f"{REGISTRY}/authorizations", world["console-1"], json=authorize_body(receiver)
        )
    ).json()["applicationProfiles"][0]
    receiver.failures = [500, 503, 404]
    await http.put(
        f"{ADMIN}/app-profiles/{profile['appProfileId']}",
        json={"maxPriority": "mcpttp.3"},
        headers=bearer(world["ops"]),
    )
    (note,) = await receiver.wait_for(lambda r: len(r) >= 1)
    assert note["version"] == 2 and receiver.failures == []
    entry = await outbox_entry(http, world["ops"], lambda e: e["state"] == "DELIVERED")
    assert (entry["attempts"], entry["lastError"]) == (4, "HTTP 404")


async def test_a_newer_version_supersedes_an_undelivered_older_one(
    http: httpx.AsyncClient, world: dict[str, str], receiver: Receiver
) -> None:
    profile = (
        await call(
            http, "POST", f"{REGISTRY}/authorizations", world["console-1"], json=authorize_body(receiver)
        )
    ).json()["applicationProfiles"][0]
    receiver.failures = [503] * 3
    url = f"{ADMIN}/app-profiles/{profile['appProfileId']}"
    await http.put(url, json={"maxPriority": "mcpttp.3"}, headers=bearer(world["ops"]))
    await asyncio.sleep(0.1)
    await http.put(url, json={"maxPriority": "mcpttp.4"}, headers=bearer(world["ops"]))
    received = await receiver.wait_for(lambda r: any(n["version"] == 3 for n in r))
    assert [n["version"] for n in received] == [3]  # version 2 was never sent once 3 existed
    await outbox_entry(http, world["ops"], lambda e: e["state"] == "DELIVERED")
    outbox = (
        await http.get(f"{ADMIN}/outbox", params={"app-id": "console-1"}, headers=bearer(world["ops"]))
    ).json()["items"]
    assert sorted(e["state"] for e in outbox) == ["DELIVERED", "SUPERSEDED"]


async def outbox_entry(
    http: httpx.AsyncClient, ops: str, predicate: Any, timeout: float = 10.0
) -> dict[str, Any]:
    """The notification entry of the outbox once ``predicate`` holds (delivery is committed after the 2xx)."""
    async with asyncio.timeout(timeout):
        while True:
            outbox = (
                await http.get(f"{ADMIN}/outbox", params={"state": "DELIVERED"}, headers=bearer(ops))
            ).json()["items"]
            found = [e for e in outbox if e["kind"] == "notification" and predicate(e)]
            if found:
                return dict(found[0])
            await asyncio.sleep(0.05)
