"""Store contract for pool ownership and approved interfaces (``tx.pools``, ``store.pools``), on every
backend: the patterns a service client is provisioned for as of the current unit of work (a revocation
counts at the next write), and one approval row per pool, "nothing approved" kept apart from "an
empty approval"."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from asgate.domain.idm import Client
from asgate.domain.registry import Version
from asgate.store import Store
from asgate.store.pools import PoolInterface
from asgate.store.tx import Tx

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
V1 = Version.model_validate(
    {
        "apiVersion": "v1",
        "resources": [
            {
                "resourceName": "groups",
                "uri": "/groups",
                "commType": "REQUEST_RESPONSE",
                "operations": ["GET"],
            }
        ],
    }
)


def client(client_id: str, *patterns: str) -> Client:
    return Client(client_id=client_id, service_pools=patterns, created_at=AT, updated_at=AT)


def interface(
    pool: tuple[str, str],
    approved: list[Version] | None = None,
    *,
    version: int = 1,
    rejected: str | None = None,
    by: str = "admin",
) -> PoolInterface:
    return PoolInterface(pool, approved, rejected, version, by, AT + timedelta(minutes=version))


async def test_patterns_of_lists_what_each_client_is_provisioned_for(store: Store) -> None:
    await store.write(lambda tx: tx.clients.add(client("gms-1", "GM/gms", "GM/gms-*", "GM/gms")))
    await store.write(lambda tx: tx.clients.add(client("cms-1", "CM/*")))
    await store.write(lambda tx: tx.clients.add(client("idle")))

    found = await store.write(lambda tx: tx.pools.patterns_of(["gms-1", "cms-1", "idle", "unknown", "gms-1"]))
    assert {k: sorted(v) for k, v in found.items()} == {"gms-1": ["GM/gms", "GM/gms-*"], "cms-1": ["CM/*"]}
    assert await store.write(lambda tx: tx.pools.patterns_of([])) == {}


async def test_a_revocation_counts_from_the_next_unit_of_work_and_inside_its_own(store: Store) -> None:
    await store.write(lambda tx: tx.clients.add(client("gms-1", "GM/gms", "GM/west")))
    await store.write(lambda tx: tx.clients.update("gms-1", service_pools=("GM/west",)))
    assert await store.write(lambda tx: tx.pools.patterns_of(["gms-1"])) == {"gms-1": ["GM/west"]}

    def revoke_and_look(tx: Tx) -> dict[str, list[str]]:
        tx.clients.update("gms-1", service_pools=())
        return tx.pools.patterns_of(["gms-1"])

    assert await store.write(revoke_and_look) == {}
    await store.write(lambda tx: tx.clients.update("gms-1", service_pools=("GM/gms",)))
    await store.write(lambda tx: tx.clients.remove("gms-1"))
    assert await store.write(lambda tx: tx.pools.patterns_of(["gms-1"])) == {}


async def test_a_failed_revocation_leaves_the_patterns(store: Store) -> None:
    await store.write(lambda tx: tx.clients.add(client("gms-1", "GM/gms")))

    def revoke_then_fail(tx: Tx) -> None:
        tx.clients.update("gms-1", service_pools=())
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        await store.write(revoke_then_fail)
    assert await store.write(lambda tx: tx.pools.patterns_of(["gms-1"])) == {"gms-1": ["GM/gms"]}


async def test_interfaces_round_trip_keeping_nothing_approved_apart_from_an_empty_approval(
    store: Store,
) -> None:
    approved = interface(("GM", "gms"), [V1])
    pending = interface(("GM", "west"), None, rejected="d" * 64)  # nothing approved, an offer refused
    empty = interface(("CM", "cms"), [])  # approved: no resource at all

    def put_all(tx: Tx) -> None:
        for item in (approved, pending, empty):
            tx.pools.interface_put(item, new=True)

    await store.write(put_all)
    expected = {("GM", "gms"): approved, ("GM", "west"): pending, ("CM", "cms"): empty}
    assert await store.pools.interfaces() == expected
    assert await store.write(lambda tx: tx.pools.interfaces()) == expected
    assert (await store.pools.interfaces([("GM", "west")]))[("GM", "west")].approved is None
    assert (await store.pools.interfaces([("CM", "cms")]))[("CM", "cms")].approved == []


async def test_interfaces_returns_only_the_pools_asked_for_that_have_a_row(store: Store) -> None:
    pools = [("GM", f"gms-{i:04d}") for i in range(2100)]  # more than one statement's parameters

    def put_all(tx: Tx) -> None:
        for pool in pools:
            tx.pools.interface_put(interface(pool, [V1]), new=True)

    await store.write(put_all)
    asked = [*pools, ("GM", "gms-0000"), ("GM", "gms-9999"), ("CM", "gms-0000")]
    found = await store.pools.interfaces(asked)
    assert sorted(found) == pools  # every one that exists, whichever statement it fell in
    assert found[("GM", "gms-0002")] == interface(("GM", "gms-0002"), [V1])
    assert await store.write(lambda tx: tx.pools.interfaces([("GM", "gms-9999")])) == {}
    assert await store.pools.interfaces([]) == {}


async def test_one_approval_row_per_pool_updated_in_place(store: Store) -> None:
    pool = ("GM", "gms")
    await store.write(lambda tx: tx.pools.interface_put(interface(pool), new=True))
    with pytest.raises(IntegrityError):
        await store.write(lambda tx: tx.pools.interface_put(interface(pool, [V1]), new=True))

    second = interface(pool, [V1], version=2, by="x" * 300)  # an actor id longer than the column
    await store.write(lambda tx: tx.pools.interface_put(second, new=False))
    got = (await store.pools.interfaces([pool]))[pool]
    assert (got.approved, got.version, got.updated_at) == ([V1], 2, second.updated_at)
    assert got.updated_by == "x" * 256  # clipped, never refused
    third = interface(pool, None, version=3, rejected="e" * 64)
    await store.write(lambda tx: tx.pools.interface_put(third, new=False))
    assert await store.pools.interfaces() == {pool: third}


async def test_a_failed_approval_leaves_no_trace_and_spares_the_others(store: Store) -> None:
    pool = ("GM", "gms")
    await store.write(lambda tx: tx.pools.interface_put(interface(pool), new=True))

    def approve_then_fail(tx: Tx) -> None:
        tx.pools.interface_put(interface(pool, [V1], version=2), new=False)
        assert tx.pools.interfaces([pool])[pool].approved == [V1]  # seen inside the unit of work
        raise RuntimeError("refused")

    other = interface(("CM", "cms"), [V1])
    results = await asyncio.gather(
        store.write(approve_then_fail),
        store.write(lambda tx: tx.pools.interface_put(other, new=True)),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError) and results[1] is None
    assert await store.pools.interfaces() == {pool: interface(pool), ("CM", "cms"): other}
