"""The unit of work (``store.write``, ``store.write_many``): batching, isolation of a failure, the
buffered audit rows; on every backend."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from asgate.domain.idm import Client
from asgate.domain.msgin5g import Registration
from asgate.store import Store
from asgate.store.ids import new_id
from asgate.store.tx import Tx

BATCHES: list[int] = []


def put_all(tx: Tx, as_svc_ids: list[str]) -> list[str]:
    """A batch work: one row per item; "BAD" fails the whole call."""
    BATCHES.append(len(as_svc_ids))
    if "BAD" in as_svc_ids:
        raise ValueError("BAD")
    regs = [
        Registration(registration_id=new_id(), as_svc_id=a, client_id="c", registered_at=datetime.now(UTC))
        for a in as_svc_ids
    ]
    tx.registrations.put(*regs)
    for a in as_svc_ids:
        tx.audit.append("c", "test.put", f"as-svc-id/{a}")
    return [r.registration_id for r in regs]


@pytest.fixture(autouse=True)
async def client(store: Store) -> None:
    now = datetime.now(UTC)
    await store.write(lambda tx: tx.clients.add(Client(client_id="c", created_at=now, updated_at=now)))
    BATCHES.clear()


async def test_write_many_runs_concurrent_items_in_one_call_each_with_its_result(store: Store) -> None:
    ids = await asyncio.gather(*(store.write_many(put_all, f"AS{i}") for i in range(100)))
    assert len(set(ids)) == 100
    assert sum(BATCHES) == 100 and len(BATCHES) < 100  # batched
    stored = {r.registration_id: r.as_svc_id for r in await store.registrations.scan(limit=1000)}
    assert [stored[i] for i in ids] == [f"AS{i}" for i in range(100)]
    assert len(await store.audit.scan(limit=1000)) == 100


async def test_write_many_isolates_the_culprit_of_a_failed_batch(store: Store) -> None:
    results = await asyncio.gather(
        store.write_many(put_all, "AS1"),
        store.write_many(put_all, "BAD"),
        store.write_many(put_all, "AS2"),
        store.write(lambda tx: tx.audit.append("w", "test.write", "x")),
        return_exceptions=True,
    )
    assert isinstance(results[1], ValueError)
    assert isinstance(results[0], str) and isinstance(results[2], str) and results[3] is None
    assert sorted(r.as_svc_id for r in await store.registrations.scan()) == ["AS1", "AS2"]
    assert sorted(e.resource for e in await store.audit.scan()) == ["as-svc-id/AS1", "as-svc-id/AS2", "x"]


async def test_write_returns_the_value_and_raises_the_error_of_its_work(store: Store) -> None:
    assert await store.write(lambda tx: 42) == 42

    def fail(tx: Tx) -> None:
        tx.audit.append("w", "test.write", "undone")
        raise LookupError("no")

    with pytest.raises(LookupError):
        await store.write(fail)
    assert await store.audit.scan() == []
