"""mcx-registry-admin/v1 and the CSC-15 snapshot; responses checked against their documents."""

from __future__ import annotations

from typing import Any

import httpx

from asgate.kernel.settings import Settings
from asgate.system.runtime import Runtime
from tests import contract
from tests.conftest import bearer
from tests.registry.conftest import ADMIN, DOCS, REGISTRY, admin_app, admin_grant, gm_registration, register

SPEC = DOCS / "admin.yaml"


async def call(http: httpx.AsyncClient, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
    headers = {**bearer(token), **kw.pop("headers", {})}
    response = await http.request(method, f"{ADMIN}{path}", headers=headers, **kw)
    contract.check(SPEC, response)
    return response


async def test_apps_crud_with_etags(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    ops = tokens["ops"]
    spec = {
        "displayName": "Dispatch console",
        "allowedServices": [{"serviceType": "GM"}],
        "maxPriority": "mcpttp.10",
    }
    created = await call(http, "PUT", "/apps/console-1", ops, json=spec)
    assert created.status_code == 201 and created.headers["etag"] == '"1"'
    assert created.json()["trustDomain"] == "UNTRUSTED"
    replaced = await call(
        http,
        "PUT",
        "/apps/console-1",
        ops,
        json={**spec, "maxPriority": "mcpttp.12"},
        headers={"If-Match": '"1"'},
    )
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    stale = await call(http, "PUT", "/apps/console-1", ops, json=spec, headers={"If-Match": '"1"'})
    assert (stale.status_code, stale.json()["cause"]) == (412, "PRECONDITION_FAILED")
    listed = await call(http, "GET", "/apps", ops)
    assert [a["clientId"] for a in listed.json()["items"]] == ["console-1"]
    assert (await call(http, "GET", "/apps/console-1", ops)).json()["maxPriority"] == "mcpttp.12"
    bad = await call(http, "PUT", "/apps/console-2", ops, json={"maxPriority": "urgent"})
    assert (bad.status_code, bad.json()["invalidParams"][0]["param"]) == (400, "/maxPriority")
    assert (await call(http, "DELETE", "/apps/console-1", ops)).status_code == 204
    assert (await call(http, "GET", "/apps/console-1", ops)).status_code == 404


async def test_grants_need_an_app_and_are_csc15_changes(
    http: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    ops = tokens["ops"]
    missing = await call(http, "PUT", "/grants/console-1/alice@mc.example", ops, json={})
    assert (missing.status_code, missing.json()["invalidParams"][0]["param"]) == (404, "/appId")
    await admin_app(http, ops, "console-1")
    granted = await call(
        http, "PUT", "/grants/console-1/alice@mc.example", ops, json={"services": [{"serviceType": "GM"}]}
    )
    assert granted.status_code == 201 and granted.json()["services"] == [{"serviceType": "GM"}]
    assert (await call(http, "GET", "/grants", ops, params={"app-id": "console-1"})).json()["items"][0][
        "mcServiceId"
    ] == "alice@mc.example"
    assert (await call(http, "DELETE", "/grants/console-1/alice@mc.example", ops)).status_code == 204
    changes = await rt.store.registry.changes(0, kinds=["user-authorization"])
    assert [(c.key, c.op) for c in changes] == [
        ("console-1/alice@mc.example", "PUT"),
        ("console-1/alice@mc.example", "DELETE"),
    ]


async def test_services_outbox_and_audit_views(
    http: httpx.AsyncClient, tokens: dict[str, str], settings: Settings
) -> None:
    ops = tokens["ops"]
    location = (await register(http, tokens["gms-1"], gm_registration())).headers["location"]
    instance_id = location.rsplit("/", 1)[1]
    page = (await call(http, "GET", "/services", ops, params={"service-type": "GM"})).json()
    assert [(i["serviceInstanceId"], i["status"]) for i in page["items"]] == [(instance_id, "REGISTERED")]
    assert (await call(http, "GET", f"/services/{instance_id}", ops)).json()["clientId"] == "gms-1"
    assert (await call(http, "DELETE", f"/services/{instance_id}", ops)).status_code == 204
    assert (await http.put(f"{location}/heartbeat", headers=bearer(tokens["gms-1"]))).status_code == 404
    audit = (
        await call(http, "GET", "/audit", ops, params={"resource": f"service-instance/{instance_id}"})
    ).json()["items"]
    assert [(e["actor"], e["action"]) for e in audit] == [
        ("gms-1", "service.register"),
        ("ops", "service.evict"),
    ]
    # Nothing waits for an application; the one entry is this process's own access server (CSC-15).
    outbox = (await call(http, "GET", "/outbox", ops)).json()["items"]
    assert [(i["kind"], i["target"]) for i in outbox] == [("csc15", settings.public_root)]
    assert (await call(http, "POST", "/outbox/12345/retry", ops)).status_code == 404


async def test_an_unknown_outbox_state_is_refused_not_an_empty_page(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    # A typo would otherwise show "nothing pending" to an administrator looking for stuck work.
    typo = await call(http, "GET", "/outbox", tokens["ops"], params={"state": "PENDNG"})
    assert (typo.status_code, typo.json()["invalidParams"][0]["param"]) == (400, "query state")
    assert (await call(http, "GET", "/outbox", tokens["ops"], params={"state": "PENDING"})).status_code == 200


async def test_a_wrong_method_is_405_naming_every_method_of_the_resource(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    # One route per method: Allow must still list them all (RFC 9110 15.5.6).
    ops = bearer(tokens["ops"])
    wrong = await http.patch(f"{ADMIN}/apps/console-1", json={}, headers=ops)
    assert (wrong.status_code, wrong.json()["cause"]) == (405, "METHOD_NOT_ALLOWED")
    assert wrong.headers["allow"] == "DELETE, GET, HEAD, PUT"
    grants = await http.post(f"{ADMIN}/grants/console-1/alice@mc.example", json={}, headers=ops)
    assert (grants.status_code, grants.headers["allow"]) == (405, "DELETE, PUT")


async def test_the_admin_api_needs_the_admin_scope(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    for token in (tokens["console-1"], tokens["gms-1"]):
        refused = await call(http, "GET", "/apps", token)
        assert (refused.status_code, refused.json()["cause"]) == (403, "INSUFFICIENT_SCOPE")


async def test_snapshot_is_consistent_with_its_sequence(
    http: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    ops = tokens["ops"]
    await register(http, tokens["gms-1"], gm_registration())
    await admin_app(http, ops, "console-1")
    await admin_grant(http, ops, "console-1", "alice@mc.example")
    body = {
        "mcServiceId": "alice@mc.example",
        "requestType": "AUTHORIZE",
        "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
    }
    await http.post(f"{REGISTRY}/authorizations", json=body, headers=bearer(tokens["console-1"]))
    response = await http.get("/mcx-registry-sync/v1/snapshot", headers=bearer(tokens["sas"]))
    contract.check(DOCS / "sync.yaml", response)
    snapshot = response.json()
    last = (await rt.store.registry.changes(0, kinds=["service-pool", "app-profile", "user-authorization"]))[
        -1
    ].seq
    assert snapshot["sequence"] == last
    assert [p["appId"] for p in snapshot["appProfiles"]] == ["console-1"]
    assert snapshot["userAuthorizations"] == [
        {"appId": "console-1", "mcServiceId": "alice@mc.example", "services": None}
    ]
    assert snapshot["servicePools"][0]["instances"][0]["port"] == 9101
    refused = await http.get("/mcx-registry-sync/v1/snapshot", headers=bearer(tokens["console-1"]))
    assert refused.status_code == 403


async def test_pool_interfaces_list_approve_reject_and_set(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    """Issue 8 item 1: a widening is listed with what it adds, approved or rejected, audited."""
    ops = tokens["ops"]
    assert (await register(http, tokens["gms-1"], gm_registration())).status_code == 201
    listed = await call(http, "GET", "/pools", ops)
    assert [(p["serviceName"], p["state"]) for p in listed.json()["items"]] == [
        ("cms", "APPROVED"),
        ("gms", "APPROVED"),
        ("gms-west", "APPROVED"),
        ("other", "APPROVED"),
        ("sds", "APPROVED"),
    ]  # fmt: skip  (the fixture's pre-approvals)
    wider = gm_registration()
    wider["versions"][0]["resources"].append(
        {"resourceName": "admin", "uri": "/admin", "commType": "REQUEST_RESPONSE"}
    )
    assert (
        await register(
            http, tokens["gms-2"], wider | {"interfaces": [wider["interfaces"][0] | {"port": 9102}]}
        )
    ).status_code == 201
    [pending] = (await call(http, "GET", "/pools", ops, params={"state": "PENDING"})).json()["items"]
    assert pending["additions"] == ["v1: resource admin /admin (every operation): new"]
    one = await call(http, "GET", "/pools/GM/gms", ops)
    assert one.headers["etag"] == f'"{pending["digest"]}"' and one.json() == pending
    stale = await call(http, "POST", "/pools/GM/gms/approve", ops, headers={"If-Match": '"0"'})
    assert (stale.status_code, stale.json()["cause"]) == (412, "PRECONDITION_FAILED")
    rejected = await call(
        http, "POST", "/pools/GM/gms/reject", ops, headers={"If-Match": one.headers["etag"]}
    )
    assert rejected.status_code == 200 and rejected.json()["state"] == "REJECTED"
    again = await call(http, "POST", "/pools/GM/gms/reject", ops)
    assert (again.status_code, again.json()["cause"]) == (409, "NOTHING_PENDING")
    narrowed = await call(http, "PUT", "/pools/GM/gms/interface", ops, json={"versions": []})
    assert narrowed.status_code == 200 and narrowed.json()["state"] == "PENDING"
    approved = await call(http, "POST", "/pools/GM/gms/approve", ops)
    assert approved.status_code == 200 and approved.json()["additions"] == []
    names = [r["resourceName"] for r in approved.json()["approvedVersions"][0]["resources"]]
    assert names == ["groups", "members", "admin"]
    assert (await call(http, "GET", "/pools/GM/nowhere", ops)).status_code == 404
    assert (await call(http, "POST", "/pools/GM/nowhere/approve", ops)).status_code == 404
    bad = await call(http, "GET", "/pools", ops, params={"state": "MAYBE"})
    assert bad.status_code == 400
    audit = (await call(http, "GET", "/audit", ops, params={"resource": "service-pool/GM/gms"})).json()[
        "items"
    ]
    assert [(e["actor"], e["action"]) for e in audit][-4:] == [
        ("gms-2", "pool.pending"), ("ops", "pool.reject"), ("ops", "pool.approve"), ("ops", "pool.approve")
    ]  # fmt: skip


async def test_revocations_are_served_to_access_servers(
    http: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC).replace(microsecond=0)
    await rt.store.write(
        lambda tx: tx.grants_oidc.revoke_access(
            "jti-1", now - timedelta(minutes=5), now + timedelta(minutes=10)
        )
    )
    await rt.store.write(
        lambda tx: tx.grants_oidc.revoke_access("jti-old", now - timedelta(hours=2), now - timedelta(hours=1))
    )
    response = await http.get("/mcx-registry-sync/v1/revocations", headers=bearer(tokens["sas"]))
    contract.check(DOCS / "sync.yaml", response)
    assert response.headers["cache-control"] == "no-store"
    # Only what is still in force: an expired token needs no revocation.
    (item,) = response.json()["revocations"]
    assert (item["kind"], item["id"]) == ("jti", "jti-1")
    assert datetime.fromisoformat(item["expiresAt"]) == now + timedelta(minutes=10)
    since = (now - timedelta(minutes=1)).isoformat()
    later = await http.get(
        "/mcx-registry-sync/v1/revocations", params={"since": since}, headers=bearer(tokens["sas"])
    )
    assert later.json() == {"revocations": []}
    for bad in ("yesterday", "2026-12-04T10:00:00", "9" * 41):
        refused = await http.get(
            "/mcx-registry-sync/v1/revocations", params={"since": bad}, headers=bearer(tokens["sas"])
        )
        contract.check(DOCS / "sync.yaml", refused)
        assert (refused.status_code, refused.json()["cause"]) == (400, "INVALID_QUERY_PARAM")
    other = await http.get("/mcx-registry-sync/v1/revocations", headers=bearer(tokens["console-1"]))
    assert (other.status_code, other.json()["cause"]) == (403, "INSUFFICIENT_SCOPE")
