"""mcx-service-registration/v1 through the in-process app; responses checked against its document."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from asgate.system.runtime import Runtime
from tests import contract
from tests.conftest import bearer
from tests.registry.conftest import DOCS, SERVICES, gm_registration, register

SPEC = DOCS / "service-registration.yaml"


async def call(http: httpx.AsyncClient, method: str, url: str, token: str, **kw: Any) -> httpx.Response:
    response = await http.request(method, url, headers={**bearer(token), **kw.pop("headers", {})}, **kw)
    contract.check(SPEC, response)
    return response


async def test_register_returns_the_stored_instance_with_location_and_etag(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    response = await call(http, "POST", SERVICES, tokens["gms-1"], json=gm_registration())
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "REGISTERED" and body["clientId"] == "gms-1"
    assert body["serviceType"] == "GM" and body["interfaces"][0]["port"] == 9101
    assert response.headers["location"] == f"http://testserver{SERVICES}/{body['serviceInstanceId']}"
    assert response.headers["etag"] == '"1"'
    shown = await call(http, "GET", response.headers["location"], tokens["gms-1"])
    assert shown.json()["serviceInstanceId"] == body["serviceInstanceId"]


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"interfaces": []}, "/interfaces"),
        ({"interfaces": [{"referencePoint": "CSC-2", "protocol": "HTTP", "port": 80}]}, "/interfaces/0"),
        (
            {
                "interfaces": [
                    {"referencePoint": "CSC-2", "protocol": "HTTP", "ipv4Addr": "300.1.1.1", "port": 80}
                ]
            },
            "/interfaces/0",
        ),
        (
            {
                "interfaces": [
                    {
                        "referencePoint": "CSC-2",
                        "protocol": "HTTP",
                        "fqdn": "gm.example",
                        "ipv4Addr": "10.0.0.1",
                        "port": 80,
                    }
                ]
            },
            "/interfaces/0",
        ),
        ({"serviceType": "G M"}, "/serviceType"),
        ({"heartbeatPeriod": 0}, "/heartbeatPeriod"),
        (
            {
                "versions": [
                    {
                        "apiVersion": "v1",
                        "resources": [
                            {"resourceName": "x", "uri": "no-slash", "commType": "REQUEST_RESPONSE"}
                        ],
                    }
                ]
            },
            "/versions/0/resources/0/uri",
        ),
    ],
)
async def test_bad_registrations_are_400_with_a_pointer(
    http: httpx.AsyncClient, tokens: dict[str, str], change: dict[str, Any], pointer: str
) -> None:
    response = await call(http, "POST", SERVICES, tokens["gms-1"], json=gm_registration(**change))
    assert response.status_code == 400
    assert any(p["param"].startswith(pointer) for p in response.json()["invalidParams"]), response.json()


async def test_only_the_registering_client_may_change_its_instance(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    location = (await register(http, tokens["gms-1"], gm_registration())).headers["location"]
    for method, url, kw in (
        ("PUT", location, {"json": gm_registration()}),
        ("PUT", f"{location}/heartbeat", {}),
        ("DELETE", location, {}),
        ("GET", location, {}),
    ):
        response = await call(http, method, url, tokens["gms-2"], **kw)
        assert (response.status_code, response.json()["cause"]) == (403, "INSTANCE_NOT_OWNED")
    app = await http.post(
        "/mcx-service-registration/v1/services", json=gm_registration(), headers=bearer(tokens["console-1"])
    )
    assert (app.status_code, app.json()["cause"]) == (403, "INSUFFICIENT_SCOPE")


async def test_update_with_if_match_and_heartbeat_and_deregister(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    location = (await register(http, tokens["gms-1"], gm_registration())).headers["location"]
    updated = await call(
        http,
        "PUT",
        location,
        tokens["gms-1"],
        json=gm_registration(environment={"region": "south"}),
        headers={"If-Match": '"1"'},
    )
    assert updated.status_code == 200 and updated.headers["etag"] == '"2"'
    assert updated.json()["environment"] == {"region": "south"}
    stale = await call(
        http, "PUT", location, tokens["gms-1"], json=gm_registration(), headers={"If-Match": '"1"'}
    )
    assert (stale.status_code, stale.json()["cause"]) == (412, "PRECONDITION_FAILED")
    assert (await call(http, "PUT", f"{location}/heartbeat", tokens["gms-1"])).status_code == 204
    assert (await call(http, "DELETE", location, tokens["gms-1"])).status_code == 204
    gone = await call(http, "PUT", f"{location}/heartbeat", tokens["gms-1"])
    assert (gone.status_code, gone.json()["cause"]) == (404, "CONTEXT_NOT_FOUND")


async def test_instances_of_a_pool_must_share_their_api_prefix(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    await register(http, tokens["gms-1"], gm_registration(port=9101))
    other = gm_registration(port=9102)
    other["interfaces"][0]["apiPrefix"] = "/other"
    response = await call(http, "POST", SERVICES, tokens["gms-2"], json=other)
    assert (response.status_code, response.json()["cause"]) == (409, "POOL_SHAPE_MISMATCH")
    same = await call(http, "POST", SERVICES, tokens["gms-2"], json=gm_registration(port=9102))
    assert same.status_code == 201


async def test_every_change_is_audited_and_logged_for_csc15(
    http: httpx.AsyncClient, tokens: dict[str, str], rt: Runtime
) -> None:
    location = (await register(http, tokens["gms-1"], gm_registration())).headers["location"]
    await http.delete(location, headers=bearer(tokens["gms-1"]))
    actions = [e.action for e in await rt.store.audit.scan()]
    assert actions[-2:] == ["service.register", "service.deregister"]
    changes = await rt.store.registry.changes(0, kinds=["service-pool"])
    assert [(c.key, c.op) for c in changes] == [("GM/gms", "PUT"), ("GM/gms", "DELETE")]
    assert changes[0].payload is not None and changes[0].payload["instances"][0]["apiPrefix"] == "/gm"
