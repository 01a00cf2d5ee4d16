"""Store contract for AS registrations, on every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from asgate.idm.models import Client
from asgate.msgin5g.models import ASProfile, Registration
from asgate.store import Store
from asgate.store.ids import new_id
from asgate.store.msgs import NotProvisionedError


@pytest.fixture(autouse=True)
async def provisioned(store: Store) -> AsyncIterator[None]:
    """as-1 holds AS0..AS299 and the odd P01..P23; as-2 holds the even P00..P24."""
    now = datetime.now(UTC)
    ids_1 = [f"AS{i}" for i in range(300)] + [f"P{i:02d}" for i in range(1, 25, 2)]
    ids_2 = [f"P{i:02d}" for i in range(0, 25, 2)]
    for client_id, ids in (("as-1", ids_1), ("as-2", ids_2)):
        await store.clients.add(
            Client(client_id=client_id, as_svc_ids=tuple(dict.fromkeys(ids)), created_at=now, updated_at=now)
        )
    yield


def reg(as_svc_id: str, client_id: str = "as-1", **kw: object) -> Registration:
    return Registration(
        registration_id=new_id(),
        as_svc_id=as_svc_id,
        client_id=client_id,
        registered_at=datetime.now(UTC),
        **kw,  # type: ignore[arg-type]
    )


async def test_register_then_get_returns_the_stored_profile(store: Store) -> None:
    r = reg(
        "AS1", app_id="app-1", target_uri="https://as.example/cb", as_prof=ASProfile(app_senarios=["v2x"])
    )
    assert await store.registrations.register(r) is None
    got = await store.registrations.get(r.registration_id)
    assert got == r
    assert got is not None and got.as_prof is not None and got.as_prof.app_senarios == ["v2x"]


async def test_a_second_registration_for_the_same_as_svc_id_replaces_the_first(store: Store) -> None:
    first, second = reg("AS1"), reg("AS1")
    await store.registrations.register(first)
    assert await store.registrations.register(second) == first.registration_id
    assert await store.registrations.get(first.registration_id) is None
    assert await store.registrations.get(second.registration_id) == second
    assert await store.registrations.count() == 1


async def test_deregister_deletes_once(store: Store) -> None:
    r = reg("AS1")
    await store.registrations.register(r)
    assert await store.registrations.deregister(r.registration_id, "as-1") == r
    assert await store.registrations.deregister(r.registration_id, "as-1") is None
    assert await store.registrations.get(r.registration_id) is None


async def test_concurrent_registrations_are_all_durable_and_share_transactions(store: Store) -> None:
    regs = [reg(f"AS{i}") for i in range(300)]
    replaced = await asyncio.gather(*(store.registrations.register(r) for r in regs))
    assert replaced == [None] * 300
    assert await store.registrations.count() == 300
    ids = {r.registration_id for r in await store.registrations.scan(limit=1000)}
    assert ids == {r.registration_id for r in regs}


async def test_concurrent_registrations_for_one_as_svc_id_leave_exactly_one(store: Store) -> None:
    regs = [reg("AS1") for _ in range(50)]
    replaced = await asyncio.gather(*(store.registrations.register(r) for r in regs))
    survivors = await store.registrations.scan(as_svc_id="AS1")
    assert len(survivors) == 1
    # Applied in arrival order: each one replaced the one before it, and the last one survives.
    assert replaced[1:] == [r.registration_id for r in regs[:-1]]
    assert survivors[0].registration_id == regs[-1].registration_id


async def test_concurrent_deregistrations_of_one_registration_succeed_once(store: Store) -> None:
    r = reg("AS1")
    await store.registrations.register(r)
    results = await asyncio.gather(
        *(store.registrations.deregister(r.registration_id, "as-1") for _ in range(10))
    )
    assert [x for x in results if x is not None] == [r]


async def test_scan_pages_in_creation_order_with_a_cursor_and_filters(store: Store) -> None:
    base = datetime.now(UTC) - timedelta(hours=1)
    regs = []
    for i in range(25):
        r = reg(f"P{i:02d}", client_id="as-1" if i % 2 else "as-2")
        regs.append(r.model_copy(update={"registered_at": base + timedelta(seconds=i)}))
        await store.registrations.register(regs[-1])
    page1 = await store.registrations.scan(limit=10)
    page2 = await store.registrations.scan(limit=10, after=page1[-1].registration_id)
    page3 = await store.registrations.scan(limit=10, after=page2[-1].registration_id)
    assert [r.registration_id for r in page1 + page2 + page3] == sorted(r.registration_id for r in regs)
    assert len(page3) == 5
    mine = await store.registrations.scan(limit=100, client_id="as-1")
    assert {r.as_svc_id for r in mine} == {f"P{i:02d}" for i in range(1, 25, 2)}
    assert [r.as_svc_id for r in await store.registrations.scan(as_svc_id="P07")] == ["P07"]


async def test_every_registration_and_deregistration_is_audited(store: Store) -> None:
    r = reg("AS1")
    await store.registrations.register(r)
    await store.registrations.deregister(r.registration_id, "ops")
    events = await store.audit.scan(resource=f"as-registration/{r.registration_id}")
    assert [(e.actor, e.action, e.outcome) for e in events] == [
        ("as-1", "msgs.register", "ok"),
        ("ops", "msgs.deregister", "ok"),
    ]


async def test_an_unprovisioned_as_svc_id_is_refused_and_the_refusal_audited(store: Store) -> None:
    with pytest.raises(NotProvisionedError):
        await store.registrations.register(reg("AS-UNKNOWN"))
    with pytest.raises(NotProvisionedError):
        await store.registrations.register(reg("AS1", client_id="as-2"))  # someone else's
    ok, refused = await asyncio.gather(
        store.registrations.register(reg("AS2")),
        store.registrations.register(reg("AS3", client_id="as-2")),
        return_exceptions=True,
    )
    assert ok is None and isinstance(refused, NotProvisionedError)  # one batch, each judged alone
    assert [r.as_svc_id for r in await store.registrations.scan()] == ["AS2"]
    denied = [(e.actor, e.resource) for e in await store.audit.scan() if e.outcome == "denied"]
    assert denied == [("as-1", "as-svc-id/AS-UNKNOWN"), ("as-2", "as-svc-id/AS1"), ("as-2", "as-svc-id/AS3")]


async def test_bulk_load(store: Store) -> None:
    await store.registrations.load(reg(f"AS{i}") for i in range(12_000))
    assert await store.registrations.count() == 12_000
