"""Wake-ups across processes (issue 10 §2): a commit in one process's store reaches a listener of
another's over PostgreSQL LISTEN/NOTIFY, only once committed, and the listener comes back by itself
when its connection is killed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from asgate.kernel.background import Background
from asgate.store import Store
from asgate.store.signals import CHANGES, OUTBOX, RECONNECTED, Listener
from asgate.store.tx import Tx
from tests.conftest import PG_URL

NOW = 1_000_000.0


class Heard:
    """The topics a listener reported, as they come."""

    def __init__(self) -> None:
        self.topics: list[str] = []
        self._new = asyncio.Event()

    def __call__(self, topic: str) -> None:
        self.topics.append(topic)
        self._new.set()

    async def wait(self, topic: str, count: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while self.topics.count(topic) < count:
                self._new.clear()
                await self._new.wait()


@pytest.fixture
async def stores(database: dict[str, Any]) -> AsyncIterator[tuple[Store, Store]]:
    url, schema = database["database_url"], database.get("database_schema")
    first = await Store.open(url, schema=schema)
    second = await Store.open(url, schema=schema)
    try:
        yield first, second
    finally:
        await second.close()
        await first.close()


@pytest.fixture
async def listening(stores: tuple[Store, Store]) -> AsyncIterator[tuple[Listener, Heard]]:
    heard = Heard()
    listener = stores[1].listener(heard)
    if listener is None:
        pytest.skip("SQLite: no other process writes what this one must act on (see the next test)")
    background = Background()
    background.spawn(listener.run(background), "signals")
    try:
        await heard.wait(RECONNECTED)
        yield listener, heard
    finally:
        await background.stop()


async def test_sqlite_has_no_listener(backend: str, stores: tuple[Store, Store]) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL listens (the other tests)")
    assert stores[0].listener(lambda topic: None) is None


async def test_a_committed_change_wakes_another_process_within_milliseconds(
    stores: tuple[Store, Store], listening: tuple[Listener, Heard]
) -> None:
    _, heard = listening
    started = asyncio.get_running_loop().time()
    await stores[0].write(lambda tx: tx.outbox.enqueue_many([("app", "p1", 1, "websocket")], NOW))
    await heard.wait(OUTBOX, timeout=1.0)
    assert asyncio.get_running_loop().time() - started < 0.5
    await stores[0].write(lambda tx: tx.changes.append("external-app", "app", "DELETE", None, _at()))
    await heard.wait(CHANGES, timeout=1.0)


async def test_a_rolled_back_unit_of_work_signals_nothing(
    stores: tuple[Store, Store], listening: tuple[Listener, Heard]
) -> None:
    _, heard = listening

    def refused(tx: Tx) -> None:
        tx.outbox.enqueue_many([("app", "p1", 1, "websocket")], NOW)
        raise ValueError("refused after queuing")

    with pytest.raises(ValueError, match="refused"):
        await stores[0].write(refused)
    await stores[0].write(lambda tx: tx.changes.append("external-app", "app", "DELETE", None, _at()))
    await heard.wait(CHANGES)  # signals arrive in commit order: the refused one would be here by now
    assert OUTBOX not in heard.topics
    assert await stores[0].registry.deliveries() == []


async def test_the_listener_reconnects_after_its_connection_is_killed(
    stores: tuple[Store, Store], listening: tuple[Listener, Heard]
) -> None:
    listener, heard = listening
    killed = listener.server_pid
    admin = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", killed) is True
    finally:
        await admin.close()
    # Back by itself, and it says so (whatever was committed meanwhile must be looked at)...
    await heard.wait(RECONNECTED, count=2)
    assert listener.server_pid != killed
    # ...and it hears the next commit.
    await stores[0].write(lambda tx: tx.outbox.enqueue_many([("app", "p1", 1, "websocket")], NOW))
    await heard.wait(OUTBOX, timeout=1.0)


def _at() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_a_forged_signal_carries_nothing(
    stores: tuple[Store, Store], listening: tuple[Listener, Heard]
) -> None:
    listener, heard = listening
    forger = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        for payload in ('{"app": "console-1", "ack": 1}', "DROP TABLE notifications", "x" * 7000, OUTBOX):
            await forger.execute("SELECT pg_notify($1, $2)", listener.channel, payload)
    finally:
        await forger.close()
    await heard.wait(OUTBOX)
    assert heard.topics == [RECONNECTED, OUTBOX]  # only a known topic, and it is only a wake-up
    assert await stores[0].registry.deliveries() == []
