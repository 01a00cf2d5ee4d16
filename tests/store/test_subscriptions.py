"""Store contract for notification subscriptions (``tx.subscriptions``, ``store.registry.subscription``),
on every backend: at most one per application, replaced whole, gone when deleted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from asgate.store import Store
from asgate.store.registry import Subscription
from asgate.store.tx import Tx

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def test_put_then_read_a_callback_or_a_websocket_subscription(store: Store) -> None:
    callback = Subscription("app-1", "https://app.example/cb", False)
    socket = Subscription("app-2", None, True)
    await store.write(lambda tx: tx.subscriptions.put(callback, AT))
    await store.write(lambda tx: tx.subscriptions.put(socket, AT))

    assert await store.registry.subscription("app-1") == callback
    assert await store.registry.subscription("app-2") == socket
    assert await store.registry.subscription("app-3") is None


async def test_a_put_replaces_the_whole_subscription_of_the_application(store: Store) -> None:
    await store.write(lambda tx: tx.subscriptions.put(Subscription("app-1", "https://a/cb", False), AT))
    await store.write(lambda tx: tx.subscriptions.put(Subscription("app-1", None, True), AT))
    assert await store.registry.subscription("app-1") == Subscription("app-1", None, True)
    await store.write(lambda tx: tx.subscriptions.put(Subscription("app-1", "https://b/cb", False), AT))
    assert await store.registry.subscription("app-1") == Subscription("app-1", "https://b/cb", False)
    assert await store.write(lambda tx: tx.subscriptions.many(["app-1"])) == {
        "app-1": Subscription("app-1", "https://b/cb", False)
    }


async def test_many_returns_only_the_subscribed_applications_across_id_chunks(store: Store) -> None:
    subscribed = [f"app-{i:04d}" for i in range(0, 1200, 2)]  # 600: more than one IN (...) list

    def put_all(tx: Tx) -> None:
        for app_id in subscribed:
            tx.subscriptions.put(Subscription(app_id, f"https://{app_id}.example/cb", False), AT)

    await store.write(put_all)
    asked = ["app-0001", *subscribed, "app-9999", "app-0002"]  # absent ones, and one asked for twice
    found = await store.write(lambda tx: tx.subscriptions.many(asked))
    assert sorted(found) == subscribed
    assert found["app-0002"] == Subscription("app-0002", "https://app-0002.example/cb", False)
    assert await store.write(lambda tx: tx.subscriptions.many([])) == {}


async def test_delete_unsubscribes_only_that_application_and_is_idempotent(store: Store) -> None:
    await store.write(lambda tx: tx.subscriptions.put(Subscription("app-1", "https://a/cb", False), AT))
    await store.write(lambda tx: tx.subscriptions.put(Subscription("app-2", None, True), AT))

    await store.write(lambda tx: tx.subscriptions.delete("app-1"))
    await store.write(lambda tx: tx.subscriptions.delete("app-1"))  # already gone: nothing happens

    assert await store.registry.subscription("app-1") is None
    assert await store.registry.subscription("app-2") == Subscription("app-2", None, True)
    assert await store.write(lambda tx: tx.subscriptions.many(["app-1", "app-2"])) == {
        "app-2": Subscription("app-2", None, True)
    }


async def test_a_failed_unit_of_work_leaves_no_trace_and_spares_the_others(store: Store) -> None:
    kept = Subscription("app-1", "https://a/cb", False)
    await store.write(lambda tx: tx.subscriptions.put(kept, AT))

    def switch_then_fail(tx: Tx) -> None:
        tx.subscriptions.put(Subscription("app-1", None, True), AT)
        assert tx.subscriptions.many(["app-1"])["app-1"].websocket  # seen inside the unit of work
        tx.subscriptions.put(Subscription("app-9", "https://z/cb", False), AT)
        raise RuntimeError("refused")

    def unsubscribe_then_fail(tx: Tx) -> None:
        tx.subscriptions.delete("app-1")
        raise RuntimeError("refused")

    other = Subscription("app-2", None, True)
    results = await asyncio.gather(
        store.write(switch_then_fail),
        store.write(lambda tx: tx.subscriptions.put(other, AT)),
        store.write(unsubscribe_then_fail),
        return_exceptions=True,
    )
    assert (
        isinstance(results[0], RuntimeError) and results[1] is None and isinstance(results[2], RuntimeError)
    )
    assert await store.registry.subscription("app-1") == kept
    assert await store.registry.subscription("app-2") == other
    assert await store.registry.subscription("app-9") is None
