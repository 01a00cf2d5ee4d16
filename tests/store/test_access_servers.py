"""Store contract of the registered access servers (``tx.access_servers``) and of the push lease on a
CSC-15 target (``tx.targets.claim``/``release``), on every backend (issue 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asgate.store import Store
from asgate.store.registry import AccessServerRecord

T0 = datetime(2026, 12, 5, 4, 0, tzinfo=UTC)
URL = "http://10.0.0.12:7482"


async def test_access_servers_are_added_refreshed_forgotten_and_removed(store: Store) -> None:
    await store.write(lambda tx: tx.access_servers.add(AccessServerRecord("sas-a", "owner-a", URL, T0, T0)))
    later = T0 + timedelta(minutes=5)
    await store.write(
        lambda tx: tx.access_servers.add(AccessServerRecord("sas-b", "owner-b", "http://b", later, later))
    )
    await store.write(lambda tx: tx.access_servers.seen("sas-a", "http://a2", T0 + timedelta(seconds=30)))
    got = await store.write(lambda tx: (tx.access_servers.get("sas-a"), tx.access_servers.count()))
    assert got == (AccessServerRecord("sas-a", "owner-a", "http://a2", T0, T0 + timedelta(seconds=30)), 2)
    assert await store.write(lambda tx: tx.access_servers.get("nobody")) is None
    forgotten = await store.write(lambda tx: tx.access_servers.forget_silent(T0 + timedelta(minutes=1)))
    assert forgotten == 1
    assert [r.sas_id for r in await store.registry.access_servers()] == ["sas-b"]
    await store.write(lambda tx: tx.access_servers.remove("sas-b"))
    assert await store.registry.access_servers() == []


async def test_one_holder_at_a_time_takes_a_targets_lease(store: Store) -> None:
    await store.write(lambda tx: tx.targets.ensure(URL, 0))
    assert await store.write(lambda tx: tx.targets.claim(URL, "p1", 100.0, 115.0)) is True
    assert await store.write(lambda tx: tx.targets.claim(URL, "p2", 101.0, 116.0)) is False  # held
    assert await store.write(lambda tx: tx.targets.claim(URL, "p1", 108.0, 123.0)) is True  # renewed
    (target,) = await store.registry.targets()
    assert (target.holder, target.lease_until) == ("p1", 123.0)
    assert await store.write(lambda tx: tx.targets.claim(URL, "p2", 124.0, 139.0)) is True  # expired
    await store.write(lambda tx: tx.targets.release("p1"))  # not the holder any more: nothing
    assert (await store.registry.targets())[0].holder == "p2"
    await store.write(lambda tx: tx.targets.release("p2"))
    assert await store.write(lambda tx: tx.targets.claim(URL, "p1", 125.0, 140.0)) is True  # at once
    assert await store.write(lambda tx: tx.targets.claim("http://unknown", "p1", 125.0, 140.0)) is False
