"""Trust boundary: service registry server -> service access server (CSC-15, ``mcx-access-profiles``).

What crosses it: application profiles, MC user authorizations and service pools, numbered. What could
go wrong: a client that is not the registry rewrites what the SAS enforces; a malformed or forged
sequence number makes the SAS skip or ignore the registry's changes (one push of ``sequence: 10^30``
used to wedge it until a restart) while the registry's outbox reports them delivered.

Every test runs a whole asgate on real sockets and checks the refusal, that the SAS's state did not
change, and what the registry's outbox (``sas_targets``) says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from asgate.domain.idm import Client
from asgate.idm.passwords import hash_secret
from asgate.kernel.settings import Settings
from asgate.registry.sync import csc15_issued, last_csc15_seq
from asgate.store import ReservedClientIdError
from asgate.system.runtime import Runtime
from tests.access.system import System, bearer, running_system
from tests.access.test_policy import profile

API = "/mcx-access-profiles/v1"


@pytest.fixture
async def system(make_settings: Callable[..., Settings]) -> AsyncIterator[System]:
    async with running_system(make_settings, registry_sas_check_interval=0.3) as running:
        await settled(running)
        yield running


def registry_token(system: System, client_id: str = "asgate-registry") -> dict[str, str]:
    """A token as the registry's pusher holds (or as a thief of its credentials would)."""
    return bearer(
        system.tokens.issue(subject=client_id, client_id=client_id, scopes=["mcx-access-profiles"])[0]
    )


async def state(system: System) -> dict[str, Any]:
    response = await system.http.get(f"{system.api}{API}/state", headers=registry_token(system, "ops"))
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def settled(system: System) -> int:
    """Wait until the SAS holds everything the registry issued; returns that sequence."""
    async with asyncio.timeout(10):
        while True:
            issued = await last_csc15_seq(system.rt.store)
            if (await state(system))["sequence"] == issued:
                return issued
            await asyncio.sleep(0.05)


async def assert_untouched(system: System, before: dict[str, Any]) -> None:
    """Nothing forged reached the SAS: the same profiles, no forged one, and a sequence the registry
    issued (the samples' heartbeats may move pools and the sequence meanwhile, legitimately)."""
    after = await state(system)
    profiles = [(p["appProfileId"], p["version"]) for p in after["appProfiles"]]
    assert profiles == [(p["appProfileId"], p["version"]) for p in before["appProfiles"]]
    assert "forged" not in [p for p, _ in profiles]
    assert await csc15_issued(system.rt.store, after["sequence"])
    assert await outbox(system) <= after["sequence"]


async def outbox(system: System) -> int:
    """The sequence the registry believes the SAS acknowledged."""
    (target,) = await system.rt.store.registry.targets()
    return target.acked_seq


async def push_one(
    system: System, sequence: str, previous: str, token: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    fields = {
        **(token or registry_token(system)),
        "Asgate-Sequence": sequence,  # as UTF-8 bytes: some of the malformed ones are not ASCII
        "Asgate-Previous-Sequence": previous,
    }
    headers = [(name.encode(), value.encode()) for name, value in fields.items()]
    body = profile(appProfileId="forged", appProfileIndex=9999, appId="console-1").dump()
    return await system.http.put(f"{system.api}{API}/app-profiles/forged", json=body, headers=headers, **kw)


async def push_batch(system: System, body: Any, token: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**(token or registry_token(system)), "Content-Type": "application/json"}
    return await system.http.post(f"{system.api}{API}/changes", content=content, headers=headers)


def forged_change(sequence: Any) -> dict[str, Any]:
    payload = profile(appProfileId="forged", appProfileIndex=9999, appId="console-1").dump()
    return {"sequence": sequence, "kind": "app-profile", "key": "forged", "op": "PUT", "payload": payload}


async def test_malformed_sequence_numbers_are_refused_and_nothing_changes(system: System) -> None:
    before = await state(system)
    current = before["sequence"]
    for sequence in ("1" + "0" * 30, "-1", "1.5", "1e3", "٣", "+5", "0x10", "007", "9223372036854775808", ""):
        response = await push_one(system, sequence, str(current))
        assert response.status_code == 400, (sequence, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["cause"] in ("MANDATORY_IE_INCORRECT", "MANDATORY_IE_MISSING")
    for previous in ("-1", "1.0", "1" + "0" * 30):
        assert (await push_one(system, str(current + 1), previous)).status_code == 400
    for bad in (10**30, -1, 2.0, True, "7", None, 2**63):
        response = await push_batch(system, {"previousSequence": current, "changes": [forged_change(bad)]})
        assert response.status_code == 400, (bad, response.text)
        response = await push_batch(
            system, {"previousSequence": bad, "changes": [forged_change(current + 1)]}
        )
        assert response.status_code == 400, (bad, response.text)
    await assert_untouched(system, before)


async def test_a_push_that_does_not_continue_the_sequence_is_409_and_nothing_is_applied(
    system: System,
) -> None:
    before = await state(system)
    current = before["sequence"]
    attempts = [
        await push_one(system, str(current + 2), str(current + 1)),  # a gap
        await push_one(system, str(current), str(current - 1)),  # a replay of what it holds
        await push_one(system, str(10**18 + 1), str(10**18)),  # a forged previous
        await push_batch(system, {"previousSequence": 0, "changes": [forged_change(1)]}),  # a stale batch
    ]
    for response in attempts:
        assert response.status_code == 409, response.text
        problem = response.json()
        assert problem["cause"] == "SEQUENCE_MISMATCH" and problem["currentSequence"] >= current
        assert response.headers["asgate-sequence"] == str(problem["currentSequence"])
        assert await csc15_issued(system.rt.store, problem["currentSequence"])
    # Out of order inside a batch that starts right: 400 (409 if the registry moved on meanwhile).
    current = (await state(system))["sequence"]
    batch = [forged_change(current + 2), forged_change(current + 1)]
    response = await push_batch(system, {"previousSequence": current, "changes": batch})
    assert response.status_code in (400, 409)
    await assert_untouched(system, before)


async def test_oversize_batches_are_refused(system: System) -> None:
    before = await state(system)
    current = before["sequence"]
    many = [{**forged_change(current + 1 + i), "op": "DELETE", "payload": None} for i in range(1001)]
    response = await push_batch(system, {"previousSequence": current, "changes": many})
    assert response.status_code == 400 and response.json()["invalidParams"][0]["param"] == "/changes"
    huge = json.dumps(
        {"previousSequence": current, "changes": [forged_change(current + 1)], "pad": "x" * (9 << 20)}
    )
    response = await push_batch(system, huge.encode())
    assert response.status_code == 413 and response.json()["cause"] == "PAYLOAD_TOO_LARGE"
    await assert_untouched(system, before)


async def test_a_client_that_is_not_the_registry_cannot_change_the_sas(system: System) -> None:
    before = await state(system)
    current = before["sequence"]
    for client in ("rogue-service", "asgate-access"):  # any holder of the scope, the SAS's own included
        token = registry_token(system, client)
        refusals = [
            await push_one(system, str(current + 1), str(current), token),
            await push_batch(
                system, {"previousSequence": current, "changes": [forged_change(current + 1)]}, token
            ),
            await system.http.post(f"{system.api}{API}/resync", headers=token),
        ]
        for response in refusals:
            assert response.status_code == 403, response.text
            assert response.json()["cause"] == "CSC15_CLIENT_NOT_ALLOWED"
    await assert_untouched(system, before)
    async with asyncio.timeout(5):  # the refusals are audited (written by the SAS's keeper)
        while len(await system.rt.store.audit.scan(action="csc15.deny", actor="rogue-service")) < 3:
            await asyncio.sleep(0.1)


async def test_after_a_forged_jump_the_sas_follows_the_registry_again(system: System) -> None:
    """A thief of the registry's credentials pushes a profile numbered 2^63-1: it continues the SAS's
    sequence, so the SAS applies it. The registry finds the SAS holding a sequence it never issued,
    has it adopt its snapshot (forged profile gone) and carries on; its outbox never says the SAS
    acknowledged a change the SAS does not hold."""
    current = (await state(system))["sequence"]
    forged = await push_one(system, str(2**63 - 1), str(current))
    assert forged.status_code == 204 and forged.headers["asgate-sequence"] == str(2**63 - 1)
    assert 9999 in [p["appProfileIndex"] for p in (await state(system))["appProfiles"]]

    # A change the registry makes right after: it must reach the SAS, and not be counted before.
    ops = bearer(system.app_token("ops", "mcx-registry-admin"))
    response = await system.http.put(
        f"{system.api}/mcx-registry-admin/v1/grants/console-1/bob@mc.example", json={}, headers=ops
    )
    assert response.status_code == 201
    change = await last_csc15_seq(system.rt.store)
    async with asyncio.timeout(15):
        while True:
            held = await state(system)
            acked = await outbox(system)
            users = {(g["appId"], g["mcServiceId"]) for g in held["userAuthorizations"]}
            if acked >= change:  # the outbox claims delivery only of what the SAS holds
                assert ("console-1", "bob@mc.example") in users and held["sequence"] >= change
            if held["sequence"] >= change and acked >= change:
                break
            await asyncio.sleep(0.02)
    assert 9999 not in [p["appProfileIndex"] for p in held["appProfiles"]]
    assert ("console-1", "bob@mc.example") in users
    # ...and follows every later change as before.
    profile_doc = await system.authorize("GM", app="console-2")
    assert profile_doc["appProfileId"] in [p["appProfileId"] for p in (await state(system))["appProfiles"]]


async def test_no_client_can_be_provisioned_under_the_registrys_name(
    rt: Runtime, http: httpx.AsyncClient
) -> None:
    """The SAS takes CSC-15 changes from `asgate-registry` (sas_csc15_clients): a client of that name
    provisioned by mistake or by a hostile import would get tokens that pass for the registry's."""
    now = datetime.now(UTC)
    for client_id in ("asgate-registry", "ASGATE-registry", "asgate-access"):
        impostor = Client(
            client_id=client_id,
            secret_hash=hash_secret("s3cret"),
            scopes=("mcx-access-profiles",),
            created_at=now,
            updated_at=now,
        )
        with pytest.raises(ReservedClientIdError):
            await rt.store.write(lambda tx: tx.clients.add(impostor))  # noqa: B023 - awaited at once
        assert await rt.store.clients.get(client_id) is None
        token = await http.post(
            "/oauth2/token",
            data={"grant_type": "client_credentials", "scope": "mcx-access-profiles"},
            auth=(client_id, "s3cret"),
        )
        assert token.status_code == 401, token.text
