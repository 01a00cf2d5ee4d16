"""Store contract for the audit log (``tx.audit`` and the reads), on every backend."""

from __future__ import annotations

import asyncio
import functools

import pytest

from asgate.store import Store
from asgate.store.tx import Tx


async def test_append_then_scan_in_order_with_filters(store: Store) -> None:
    await store.write(lambda tx: tx.audit.append("alice", "client.add", "client/c1"))
    await store.write(
        lambda tx: tx.audit.append(
            "bob", "msgs.register", "as-svc-id/AS1", "denied", reason="not provisioned", details={"a": 1}
        )
    )
    events = await store.audit.scan()
    assert [(e.actor, e.action, e.resource, e.outcome, e.reason, e.details) for e in events] == [
        ("alice", "client.add", "client/c1", "ok", None, None),
        ("bob", "msgs.register", "as-svc-id/AS1", "denied", "not provisioned", {"a": 1}),
    ]
    assert events[0].id is not None and events[1].id is not None and events[0].id < events[1].id
    assert [e.actor for e in await store.audit.scan(actor="bob")] == ["bob"]
    assert [e.actor for e in await store.audit.scan(resource="client/c1")] == ["alice"]
    assert [e.actor for e in await store.audit.scan(action="msgs.register")] == ["bob"]
    assert await store.audit.scan(after=events[1].id) == []


async def test_huge_identifiers_are_clipped_never_refused(store: Store) -> None:
    await store.write(lambda tx: tx.audit.append("a" * 5000, "x.y", "r" * 5000))
    (event,) = await store.audit.scan()
    assert len(event.actor) == 256 and len(event.resource) == 512 and event.resource.endswith("…")


async def test_a_failed_unit_of_work_takes_its_audit_rows_with_it(store: Store) -> None:
    def audited_then_failed(tx: object) -> None:
        tx.audit.append("carol", "x.fail", "thing/1")  # type: ignore[attr-defined]
        raise RuntimeError("refused")

    results = await asyncio.gather(
        store.write(lambda tx: tx.audit.append("dave", "x.ok", "thing/2")),
        store.write(audited_then_failed),
        return_exceptions=True,
    )
    assert results[0] is None and isinstance(results[1], RuntimeError)
    assert [e.actor for e in await store.audit.scan()] == ["dave"]


def _append(tx: Tx, actor: str) -> None:
    tx.audit.append(actor, "x.y", "r")


async def test_concurrent_appends_are_all_durable(store: Store) -> None:
    await asyncio.gather(*(store.write(functools.partial(_append, actor=f"u{i}")) for i in range(200)))
    assert len(await store.audit.scan(limit=1000)) == 200


@pytest.mark.parametrize("outcome", ["ok", "denied", "error"])
async def test_outcomes_round_trip(store: Store, outcome: str) -> None:
    await store.write(lambda tx: tx.audit.append("a", "x.y", "r", outcome))
    assert [e.outcome for e in await store.audit.scan()] == [outcome]
