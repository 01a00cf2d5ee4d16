"""Store contract for AS registrations (``tx.registrations`` and the reads), on every backend.

The decisions on top (provisioning, replacement, ownership) are tested in
tests/msgin5g/test_decisions.py.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from asgate.domain.idm import Client
from asgate.domain.msgin5g import ASProfile, Registration
from asgate.store import Store
from asgate.store.ids import new_id
from asgate.store.tx import Tx


@pytest.fixture(autouse=True)
async def provisioned(store: Store) -> AsyncIterator[None]:
    """as-1 holds AS0..AS299 and the odd P01..P23; as-2 holds the even P00..P24."""
    now = datetime.now(UTC)
    ids_1 = [f"AS{i}" for i in range(300)] + [f"P{i:02d}" for i in range(1, 25, 2)]
    ids_2 = [f"P{i:02d}" for i in range(0, 25, 2)]
    for client_id, ids in (("as-1", ids_1), ("as-2", ids_2)):
        new = Client(
            client_id=client_id, as_svc_ids=tuple(dict.fromkeys(ids)), created_at=now, updated_at=now
        )
        await store.write(lambda tx: tx.clients.add(new))  # noqa: B023 - awaited at once
    yield


def reg(as_svc_id: str, client_id: str = "as-1", **kw: object) -> Registration:
    return Registration(
        registration_id=new_id(),
        as_svc_id=as_svc_id,
        client_id=client_id,
        registered_at=datetime.now(UTC),
        **kw,
    )


async def test_put_then_get_returns_the_stored_profile(store: Store) -> None:
    r = reg(
        "AS1", app_id="app-1", target_uri="https://as.example/cb", as_prof=ASProfile(app_senarios=["v2x"])
    )
    await store.write(lambda tx: tx.registrations.put(r))
    got = await store.registrations.get(r.registration_id)
    assert got == r
    assert got is not None and got.as_prof is not None and got.as_prof.app_senarios == ["v2x"]
    assert await store.write(lambda tx: tx.registrations.get(r.registration_id)) == r
    assert await store.write(lambda tx: tx.registrations.get("nope")) is None


async def test_owners_reads_the_provisioned_as_svc_ids(store: Store) -> None:
    owners = await store.write(lambda tx: tx.registrations.owners({"AS1", "P00", "AS-UNKNOWN"}))
    assert owners == {"AS1": "as-1", "P00": "as-2"}
    assert await store.write(lambda tx: tx.registrations.owners(set())) == {}


async def test_one_registration_per_as_svc_id(store: Store) -> None:
    first = reg("AS1")
    await store.write(lambda tx: tx.registrations.put(first))
    with pytest.raises(IntegrityError):
        await store.write(lambda tx: tx.registrations.put(reg("AS1")))
    assert await store.registrations.scan(as_svc_id="AS1") == [first]


async def test_delete_for_returns_the_ids_it_deleted_by_as_svc_id(store: Store) -> None:
    first, second = reg("AS1"), reg("AS2")
    await store.write(lambda tx: tx.registrations.put(first, second))
    deleted = await store.write(lambda tx: tx.registrations.delete_for({"AS1", "AS2", "AS3"}))
    assert deleted == {"AS1": first.registration_id, "AS2": second.registration_id}
    assert await store.write(lambda tx: tx.registrations.delete_for({"AS1"})) == {}
    assert await store.write(lambda tx: tx.registrations.delete_for(set())) == {}
    assert await store.registrations.count() == 0


async def test_delete_returns_the_deleted_registration_once(store: Store) -> None:
    r = reg("AS1")
    await store.write(lambda tx: tx.registrations.put(r))
    assert await store.write(lambda tx: tx.registrations.delete(r.registration_id)) == r
    assert await store.write(lambda tx: tx.registrations.delete(r.registration_id)) is None
    assert await store.registrations.get(r.registration_id) is None


def _put(tx: Tx, r: Registration) -> None:
    tx.registrations.put(r)


async def test_concurrent_writes_are_all_durable(store: Store) -> None:
    regs = [reg(f"AS{i}") for i in range(300)]
    await asyncio.gather(*(store.write(functools.partial(_put, r=r)) for r in regs))
    assert await store.registrations.count() == 300
    ids = {r.registration_id for r in await store.registrations.scan(limit=1000)}
    assert ids == {r.registration_id for r in regs}


async def test_a_failed_put_undoes_only_its_own_unit_of_work(store: Store) -> None:
    ok, clash = reg("AS2"), reg("AS1")
    await store.write(lambda tx: tx.registrations.put(reg("AS1")))

    def put_then_clash(tx: object) -> None:
        tx.registrations.put(reg("AS3"))  # type: ignore[attr-defined]
        tx.registrations.put(clash)  # type: ignore[attr-defined]

    results = await asyncio.gather(
        store.write(lambda tx: tx.registrations.put(ok)), store.write(put_then_clash), return_exceptions=True
    )
    assert results[0] is None and isinstance(results[1], IntegrityError)
    assert sorted(r.as_svc_id for r in await store.registrations.scan()) == ["AS1", "AS2"]


async def test_scan_pages_in_creation_order_with_a_cursor_and_filters(store: Store) -> None:
    base = datetime.now(UTC) - timedelta(hours=1)
    regs = []
    for i in range(25):
        r = reg(f"P{i:02d}", client_id="as-1" if i % 2 else "as-2")
        regs.append(r.model_copy(update={"registered_at": base + timedelta(seconds=i)}))
        await store.write(functools.partial(_put, r=regs[-1]))
    page1 = await store.registrations.scan(limit=10)
    page2 = await store.registrations.scan(limit=10, after=page1[-1].registration_id)
    page3 = await store.registrations.scan(limit=10, after=page2[-1].registration_id)
    assert [r.registration_id for r in page1 + page2 + page3] == sorted(r.registration_id for r in regs)
    assert len(page3) == 5
    mine = await store.registrations.scan(limit=100, client_id="as-1")
    assert {r.as_svc_id for r in mine} == {f"P{i:02d}" for i in range(1, 25, 2)}
    assert [r.as_svc_id for r in await store.registrations.scan(as_svc_id="P07")] == ["P07"]


async def test_bulk_put(store: Store) -> None:
    """Many rows in one unit of work (benchmarks and restores), past any statement's parameter limit."""
    many = [reg(f"AS{i}") for i in range(12_000)]
    await store.write(lambda tx: tx.registrations.put(*many))
    assert await store.registrations.count() == 12_000
