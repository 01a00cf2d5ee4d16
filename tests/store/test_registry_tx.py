"""Store contract for the registry's aggregates in a unit of work (``tx.instances``, ``tx.outbox``,
``tx.changes``, ``tx.targets``), on every backend: what each promises to the scripts above it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from asgate.domain.registry import ServiceRegistration
from asgate.store import Store
from asgate.store.registry import InstanceRecord
from asgate.store.tx import Tx

NOW = 1_000_000.0
AT = datetime.fromtimestamp(NOW, UTC)


def _instance(
    instance_id: str, name: str = "gms", *, status: str = "REGISTERED", period: int = 10
) -> InstanceRecord:
    registration = ServiceRegistration.model_validate(
        {
            "serviceType": "GM",
            "serviceName": name,
            "heartbeatPeriod": period,
            "interfaces": [
                {"referencePoint": "CSC-2", "protocol": "HTTP", "ipv4Addr": "127.0.0.1", "port": 9101}
            ],
        }
    )
    return InstanceRecord(
        instance_id, "gms-1", registration, status, AT, NOW, NOW + 3 * period, NOW + 3 * period + 60, 1
    )


async def test_instances_put_get_replace_delete(store: Store) -> None:
    def scenario(tx: Tx) -> None:
        assert tx.instances.get("a") is None
        tx.instances.put(_instance("a"), new=True)
        tx.instances.put(_instance("b", "other"), new=True)
        assert tx.instances.get("a") == _instance("a")
        tx.instances.put(_instance("a", status="SUSPENDED"), new=False)
        assert tx.instances.get("a").status == "SUSPENDED"  # type: ignore[union-attr]
        assert [r.service_instance_id for r in tx.instances.of_pool(("GM", "gms"))] == ["a"]
        assert [r.service_instance_id for r in tx.instances.all()] == ["a", "b"]
        assert [r.service_instance_id for r in tx.instances.registered({"gm"})] == ["b"]
        tx.instances.delete("a")
        assert tx.instances.get("a") is None

    await store.write(scenario)


async def test_instances_liveness_deadlines_and_reprieve(store: Store) -> None:
    await store.write(lambda tx: tx.instances.put(_instance("a"), new=True))
    await store.write(lambda tx: tx.instances.put(_instance("s", status="SUSPENDED"), new=True))

    def scenario(tx: Tx) -> None:
        assert tx.instances.liveness(["a", "missing"]) == {"a": ("gms-1", "REGISTERED", 10, ("GM", "gms"))}
        assert tx.instances.due(NOW) == []
        assert [r.service_instance_id for r in tx.instances.due(NOW + 30)] == ["a"]
        assert sorted(r.service_instance_id for r in tx.instances.due(NOW + 90)) == ["a", "s"]
        tx.instances.set_liveness("a", "REGISTERED", NOW + 5, NOW + 35, NOW + 95)
        assert [r.service_instance_id for r in tx.instances.due(NOW + 30)] == []
        # After a restart at NOW + 1000 every instance gets its missed heartbeats again.
        assert tx.instances.reprieve_all(NOW + 1000, 3, 60.0) == 2
        record = tx.instances.get("s")
        assert record is not None and (record.suspend_at, record.remove_at) == (NOW + 1030, NOW + 1090)

    await store.write(scenario)


async def test_outbox_supersedes_claims_with_a_lease_and_records_outcomes(store: Store) -> None:
    def queue(tx: Tx) -> None:
        tx.outbox.enqueue_many([("app", "p1", 1, "https://a/cb"), ("app", "p2", 1, "websocket")], NOW)
        tx.outbox.enqueue_many([("app", "p1", 2, "https://a/cb")], NOW)

    await store.write(queue)
    states = {(d.app_profile_id, d.version): d.state for d in await store.registry.deliveries()}
    assert states == {("p1", 1): "SUPERSEDED", ("p2", 1): "PENDING", ("p1", 2): "PENDING"}

    claimed = await store.write(lambda tx: tx.outbox.claim_due(NOW, 30.0, 10, websocket_apps=[]))
    assert [(d.app_profile_id, d.version) for d in claimed] == [("p1", 2)]  # no socket held here
    assert await store.write(lambda tx: tx.outbox.claim_due(NOW + 1, 30.0, 10, None)) != []  # p2 only
    assert await store.write(lambda tx: tx.outbox.claim_due(NOW + 1, 30.0, 10, None)) == []  # leased

    (p1,) = claimed
    p2 = next(d for d in await store.registry.deliveries() if d.app_profile_id == "p2")

    def outcomes(tx: Tx) -> None:
        tx.outbox.delivered_many([p1.id], NOW + 2)
        tx.outbox.failed(p2.id, NOW + 60, "HTTP 500")

    await store.write(outcomes)
    after = {d.id: d for d in await store.registry.deliveries()}
    assert (after[p1.id].state, after[p1.id].attempts) == ("DELIVERED", 1)
    assert (after[p2.id].state, after[p2.id].attempts, after[p2.id].last_error) == ("PENDING", 1, "HTTP 500")
    assert await store.write(lambda tx: tx.outbox.retry_now(p2.id, NOW + 3)) is True
    assert await store.write(lambda tx: tx.outbox.retry_now(p1.id, NOW + 3)) is False  # not pending


async def test_changes_are_numbered_in_order(store: Store) -> None:
    def append(tx: Tx) -> int:
        tx.changes.append("service-pool", "GM/gms", "PUT", {"instances": []}, AT)
        tx.changes.append_many(
            [("app-profile", "p1", "PUT", {"v": 1}), ("external-app", "app", "PUT", None)], AT
        )
        return tx.changes.last_seq(["service-pool", "app-profile"])

    last = await store.write(append)
    changes = await store.registry.changes(0)
    assert [(c.kind, c.key, c.op, c.payload) for c in changes] == [
        ("service-pool", "GM/gms", "PUT", {"instances": []}),
        ("app-profile", "p1", "PUT", {"v": 1}),
        ("external-app", "app", "PUT", None),
    ]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    assert last == changes[1].seq == await store.registry.last_seq_of(["service-pool", "app-profile"])
    assert await store.registry.issued(last, ["app-profile"]) is True
    assert await store.registry.issued(changes[2].seq, ["app-profile"]) is False
    assert await store.registry.issued(0, ["app-profile"]) is True


@pytest.mark.parametrize("start", [0, 7])
async def test_targets_cursor_moves_forward_on_ack_and_anywhere_on_repair(store: Store, start: int) -> None:
    url = "https://sas-1"
    await store.write(lambda tx: tx.targets.ensure(url, start))
    await store.write(lambda tx: tx.targets.ensure(url, 99))  # known: unchanged
    assert [(t.url, t.acked_seq) for t in await store.registry.targets()] == [(url, start)]

    await store.write(lambda tx: tx.targets.failed(url, NOW + 5, "refused"))
    (target,) = await store.registry.targets()
    assert (target.attempts, target.next_attempt_at, target.last_error) == (1, NOW + 5, "refused")

    await store.write(lambda tx: tx.targets.acked(url, 10, AT))
    await store.write(lambda tx: tx.targets.acked(url, 3, AT))  # an old ack never moves it back
    (target,) = await store.registry.targets()
    assert (target.acked_seq, target.attempts, target.last_error) == (10, 0, None)

    await store.write(lambda tx: tx.targets.cursor(url, 4, "resumed", AT))  # repair: backwards too
    (target,) = await store.registry.targets()
    assert (target.acked_seq, target.last_error) == (4, "resumed")
