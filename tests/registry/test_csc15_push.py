"""The CSC-15 client: every change reaches each configured access server in order, with sequence
numbers, retried until acknowledged; a backlog goes as one ordered batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest

from asgate.kernel.settings import Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests.conftest import bearer
from tests.receiver import Receiver
from tests.registry.conftest import REGISTRY, SERVICES, admin_app, admin_grant, gm_registration


@pytest.fixture
async def pushing(
    make_settings: Callable[..., Settings], receiver: Receiver
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    settings = make_settings(registry_sas_push_urls=[receiver.base], registry_retry_base=0.05)
    async with Runtime.open(settings) as rt, control_app(rt) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            yield rt, http


async def test_changes_arrive_in_order_with_sequence_numbers(
    pushing: Any, receiver: Receiver, mint: Any, service_clients: None
) -> None:
    rt, http = pushing
    svc, ops, console = (
        mint("gms-1", "mcx-service-registration"),
        mint("ops", "mcx-registry-admin"),
        mint("c", "mcx-registry"),
    )
    await http.post(SERVICES, json=gm_registration(), headers=bearer(svc))
    await receiver.wait_requests(lambda r: len(r) >= 1)
    await admin_app(http, ops, "c")
    await admin_grant(http, ops, "c", "alice@mc.example")
    body = {
        "mcServiceId": "alice@mc.example",
        "requestType": "AUTHORIZE",
        "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
    }
    profile = (await http.post(f"{REGISTRY}/authorizations", json=body, headers=bearer(console))).json()[
        "applicationProfiles"
    ][0]
    requests = await receiver.wait_requests(lambda r: len(flatten(r)) >= 3)
    for request in requests:
        assert request.path.startswith("/mcx-access-profiles/v1/")
        claims = jwt.decode(request.headers["authorization"].split()[1], options={"verify_signature": False})
        assert claims["scope"] == "mcx-access-profiles" and claims["sub"] == "asgate-registry"
    changes = flatten(requests)
    assert [(kind, op) for kind, op, _, _ in changes] == [
        ("service-pool", "PUT"), ("user-authorization", "PUT"), ("app-profile", "PUT")
    ]  # fmt: skip
    sequences = [seq for _, _, seq, _ in changes]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    assert changes[2][3] == profile["appProfileId"]
    first = requests[0]
    assert first.method == "PUT" and first.path == "/mcx-access-profiles/v1/service-pools/GM/gms"
    assert first.body["instances"][0]["port"] == 9101 and first.headers["asgate-previous-sequence"] == "0"


COLLECTIONS = {
    "service-pools": "service-pool",
    "user-authorizations": "user-authorization",
    "app-profiles": "app-profile",
}


def flatten(requests: list[Any]) -> list[tuple[str, str, int, str]]:
    """(kind, op, sequence, key) of every change, whether sent alone (PUT/DELETE) or in a batch (POST)."""
    out: list[tuple[str, str, int, str]] = []
    for request in requests:
        if request.method == "POST":
            out += [(c["kind"], c["op"], c["sequence"], c["key"]) for c in request.body["changes"]]
        else:
            collection, _, key = request.path.removeprefix("/mcx-access-profiles/v1/").partition("/")
            out.append(
                (COLLECTIONS[collection], request.method, int(request.headers["asgate-sequence"]), key)
            )
    return out


async def test_a_failing_access_server_gets_the_backlog_in_order_once_it_answers(
    pushing: Any, receiver: Receiver, mint: Any, service_clients: None
) -> None:
    rt, http = pushing
    receiver.failures = [503] * 4
    svc = mint("gms-1", "mcx-service-registration")
    for port in (9101, 9102, 9103):
        await http.post(SERVICES, json=gm_registration(port=port), headers=bearer(svc))
    requests = await receiver.wait_requests(lambda r: len(flatten(r)) >= 3)
    bodies = [
        c["payload"]
        for r in requests
        for c in (r.body["changes"] if r.method == "POST" else [{"payload": r.body}])
    ]
    assert [len(b["instances"]) for b in bodies] == [1, 2, 3]  # nothing skipped, nothing reordered
    assert receiver.failures == [] and any(
        r.method == "POST" for r in requests
    )  # the backlog went as a batch
    async with asyncio.timeout(5):  # the cursor advances once the 2xx is in
        while (await rt.store.registry.targets())[0].acked_seq != await rt.store.registry.last_seq():
            await asyncio.sleep(0.05)
    assert (await rt.store.registry.targets())[0].attempts == 0
