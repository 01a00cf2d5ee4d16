"""Group commit: one transaction for many concurrent writes, failures isolated, nothing lost on close."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, String, Table, insert, select

from asgate.store import Store
from asgate.store.engine import make_writer
from asgate.store.group_commit import CommitterClosedError, GroupCommitter

scratch_md = MetaData()
scratch = Table("gc_scratch", scratch_md, Column("id", Integer, primary_key=True), Column("v", String(20)))


def _insert(conn: Connection, items: list[int]) -> list[int]:
    if any(i < 0 for i in items):
        raise ValueError("negative")
    conn.execute(insert(scratch), [{"id": i, "v": str(i)} for i in items])
    return [i * 10 for i in items]


async def _rows(store: Store) -> list[int]:
    async with store.engine.connect() as conn:
        return sorted(r[0] for r in await conn.execute(select(scratch.c.id)))


def _writer(store: Store) -> Engine | None:
    """The same executor the store uses: a writer thread on SQLite, the event loop on PostgreSQL."""
    return make_writer(str(store.engine.url)) if store.engine.dialect.name == "sqlite" else None


@pytest.fixture
async def scratch_store(store: Store) -> Store:
    async with store.engine.begin() as conn:
        await conn.run_sync(scratch_md.create_all)
    return store


async def test_concurrent_writes_are_committed_in_shared_transactions(scratch_store: Store) -> None:
    batches: list[int] = []
    committer = GroupCommitter(
        scratch_store.engine, writer=_writer(scratch_store), observe=lambda size, _s: batches.append(size)
    )
    results = await asyncio.gather(*(committer.submit(_insert, i) for i in range(200)))
    await committer.close()
    assert results == [i * 10 for i in range(200)]
    assert await _rows(scratch_store) == list(range(200))
    assert sum(batches) == 200
    assert max(batches) > 1 and len(batches) < 200  # writes really shared transactions


async def test_a_failing_write_fails_alone(scratch_store: Store) -> None:
    committer = GroupCommitter(scratch_store.engine, writer=_writer(scratch_store))
    outcomes = await asyncio.gather(
        *(committer.submit(_insert, i) for i in [1, 2, -3, 4, 2]), return_exceptions=True
    )
    await committer.close()
    assert outcomes[:2] == [10, 20] and outcomes[3] == 40
    assert isinstance(outcomes[2], ValueError)
    assert type(outcomes[4]).__name__ == "IntegrityError"  # duplicate key 2
    assert await _rows(scratch_store) == [1, 2, 4]


async def test_close_finishes_queued_writes_then_refuses_new_ones(scratch_store: Store) -> None:
    committer = GroupCommitter(scratch_store.engine, writer=_writer(scratch_store))
    pending = [asyncio.ensure_future(committer.submit(_insert, i)) for i in range(50)]
    await asyncio.sleep(0)
    await committer.close()
    assert [p.result() for p in pending] == [i * 10 for i in range(50)]
    with pytest.raises(CommitterClosedError):
        await committer.submit(_insert, 99)
