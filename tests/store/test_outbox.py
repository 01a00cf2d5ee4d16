"""The outbox shared by several processes (issue 10 §2): each store here is one process's (its own
engine and group committer) over one database. Claims never hand one notification to two processes,
a dead process's lease expires into another's claim, and a profile's versions go out in order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asgate.store import Store
from asgate.store.registry import Delivery
from asgate.store.tx import Tx

NOW = 1_000_000.0
LEASE = 30.0


@pytest.fixture
async def stores(database: dict[str, Any]) -> AsyncIterator[tuple[Store, Store]]:
    """Two processes' stores over one database."""
    url, schema = database["database_url"], database.get("database_schema")
    first = await Store.open(url, schema=schema)
    second = await Store.open(url, schema=schema)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


async def claim(store: Store, now: float, limit: int = 10) -> list[Delivery]:
    return await store.write(lambda tx: tx.outbox.claim_due(now, LEASE, limit, None))


async def test_concurrent_claims_of_two_processes_take_each_notification_once(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    queued = [(f"app-{i % 7}", f"p{i}", 1, "https://a.example/cb") for i in range(300)]
    await a.write(lambda tx: tx.outbox.enqueue_many(queued, NOW))

    async def drain(store: Store) -> list[int]:
        taken: list[int] = []
        while claimed := await claim(store, NOW, limit=16):
            taken += [d.id for d in claimed]
        return taken

    # Several claimers per process too: each round of a process is its own transaction.
    rounds = await asyncio.gather(*(drain(store) for store in (a, b, a, b, a, b)))
    taken = [i for ids in rounds for i in ids]
    assert len(taken) == len(set(taken)) == 300  # every notification claimed, none twice
    assert {d.id for d in await a.registry.deliveries(limit=1000)} == set(taken)


async def test_a_dead_processs_lease_expires_into_another_processs_claim(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    await a.write(lambda tx: tx.outbox.enqueue_many([("app", "p1", 1, "https://a.example/cb")], NOW))
    (leased,) = await claim(a, NOW)
    await a.close()  # the process dies mid-delivery: no outcome is ever written

    assert await claim(b, NOW + LEASE - 1) == []  # still leased
    (again,) = await claim(b, NOW + LEASE)
    assert (again.id, again.version) == (leased.id, 1)


async def test_a_newer_version_waits_while_an_older_one_is_in_flight(stores: tuple[Store, Store]) -> None:
    a, b = stores
    await a.write(lambda tx: tx.outbox.enqueue_many([("app", "p1", 1, "https://a.example/cb")], NOW))
    (v1,) = await claim(a, NOW)
    # While process A sends version 1, the profile changes again: version 2 supersedes it...
    await b.write(lambda tx: tx.outbox.enqueue_many([("app", "p1", 2, "https://a.example/cb")], NOW + 1))
    # ...but no process sends version 2 before version 1's attempt is over (the application would
    # see 2 then 1).
    assert await claim(b, NOW + 2) == []
    assert await claim(a, NOW + 2) == []
    await a.write(lambda tx: tx.outbox.delivered_many([v1.id], NOW + 3))
    (v2,) = await claim(b, NOW + 3)
    assert v2.version == 2
    states = {d.version: d.state for d in await a.registry.deliveries()}
    assert states == {1: "SUPERSEDED", 2: "PENDING"}  # an acknowledged superseded one stays superseded


async def test_a_failed_attempt_of_a_superseded_version_releases_the_newer_one(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    await a.write(lambda tx: tx.outbox.enqueue_many([("app", "p1", 1, "https://a.example/cb")], NOW))
    (v1,) = await claim(a, NOW)
    await b.write(lambda tx: tx.outbox.enqueue_many([("app", "p1", 2, "https://a.example/cb")], NOW + 1))
    await a.write(lambda tx: tx.outbox.failed(v1.id, NOW + 100, "HTTP 503"))
    (v2,) = await claim(b, NOW + 2)
    assert v2.version == 2
    # Other profiles never wait for this one.
    await a.write(lambda tx: tx.outbox.enqueue_many([("app", "p2", 1, "https://a.example/cb")], NOW + 2))
    assert [d.app_profile_id for d in await claim(a, NOW + 2)] == ["p2"]


async def test_an_administrators_retry_does_not_send_a_notification_in_flight_twice(
    stores: tuple[Store, Store],
) -> None:
    a, b = stores
    await a.write(lambda tx: tx.outbox.enqueue_many([("app", "p1", 1, "https://a.example/cb")], NOW))
    (v1,) = await claim(a, NOW)

    def retry(tx: Tx) -> bool:
        return tx.outbox.retry_now(v1.id, NOW + 1)

    assert await b.write(retry) is True  # made due at once...
    assert await claim(b, NOW + 1) == []  # ...once process A's attempt is over
    await a.write(lambda tx: tx.outbox.failed(v1.id, NOW + 2, "HTTP 503"))
    assert [d.id for d in await claim(b, NOW + 2)] == [v1.id]
