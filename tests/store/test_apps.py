"""Store contract for external applications (``tx.apps``, ``store.registry.app``/``apps``), on every
backend: what the CSC-14 and administration scripts rely on.

The decisions on top (who may be authorized for what) are tested in tests/registry/test_authorize.py.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from asgate.domain.registry import ExternalApp
from asgate.store import Store
from asgate.store.tx import Tx

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def external_app(client_id: str, version: int = 1, **spec: object) -> ExternalApp:
    body: dict[str, object] = {
        "clientId": client_id,
        "version": version,
        "createdAt": AT.isoformat(),
        "updatedAt": (AT + timedelta(minutes=version)).isoformat(),
        "allowedServices": [{"serviceType": "GM", "serviceName": "gms", "capabilities": ["groups"]}],
        **spec,
    }
    return ExternalApp.model_validate(body)


async def test_put_then_get_returns_every_field_of_the_application(store: Store) -> None:
    app = external_app(
        "app-1",
        displayName="Dispatch console",
        trustDomain="TRUSTED",
        maxPriority="mcpttp.7",
        rateLimits={"perApplication": {"rate": 5.0, "burst": 10}, "maxInflight": 3},
        defaultNotificationDestination="https://app.example/cb",
        allowedOrigins=["https://console.example"],
    )
    await store.write(lambda tx: tx.apps.put(app, new=True))

    assert await store.registry.app("app-1") == app
    assert await store.write(lambda tx: tx.apps.get("app-1")) == app
    assert await store.registry.app("app-2") is None
    assert await store.write(lambda tx: tx.apps.get("app-2")) is None


async def test_one_application_per_client_id(store: Store) -> None:
    await store.write(lambda tx: tx.apps.put(external_app("app-1"), new=True))
    with pytest.raises(IntegrityError):
        await store.write(lambda tx: tx.apps.put(external_app("app-1", displayName="clone"), new=True))
    assert await store.registry.apps() == [external_app("app-1")]


async def test_an_update_replaces_the_spec_and_version_and_keeps_the_creation_time(store: Store) -> None:
    await store.write(lambda tx: tx.apps.put(external_app("app-1"), new=True))
    second = external_app("app-1", 2, trustDomain="TRUSTED", allowedServices=[{"serviceType": "CM"}])
    # A caller passing another creation time cannot rewrite history.
    moved = second.model_copy(update={"created_at": AT + timedelta(days=1)})
    await store.write(lambda tx: tx.apps.put(moved, new=False))

    got = await store.registry.app("app-1")
    assert got == second
    assert got is not None and got.created_at == AT and got.updated_at == AT + timedelta(minutes=2)
    assert [s.service_type for s in got.allowed_services] == ["CM"]


async def test_many_returns_only_the_applications_that_exist_across_id_chunks(store: Store) -> None:
    ids = [f"app-{i:04d}" for i in range(1, 1201, 2)]  # 600: more than one IN (...) list

    def put_all(tx: Tx) -> None:
        for client_id in ids:
            tx.apps.put(external_app(client_id), new=True)

    await store.write(put_all)
    asked = ["app-0000", *ids, "app-9999", "app-0001"]  # absent ones, and one asked for twice
    found = await store.write(lambda tx: tx.apps.many(asked))
    assert sorted(found) == ids
    assert found["app-0001"] == external_app("app-0001")
    assert await store.write(lambda tx: tx.apps.many([])) == {}


async def test_apps_are_listed_by_client_id(store: Store) -> None:
    for item in map(external_app, ("b", "c", "a")):
        await store.write(lambda tx, item=item: tx.apps.put(item, new=True))  # type: ignore[misc]
    assert [a.client_id for a in await store.registry.apps()] == ["a", "b", "c"]


async def test_delete_removes_only_that_application_and_is_idempotent(store: Store) -> None:
    await store.write(lambda tx: tx.apps.put(external_app("app-1"), new=True))
    await store.write(lambda tx: tx.apps.put(external_app("app-2"), new=True))

    await store.write(lambda tx: tx.apps.delete("app-1"))
    await store.write(lambda tx: tx.apps.delete("app-1"))  # already gone: nothing happens

    assert await store.registry.app("app-1") is None
    assert [a.client_id for a in await store.registry.apps()] == ["app-2"]
    # The client id is free again.
    await store.write(lambda tx: tx.apps.put(external_app("app-1", displayName="again"), new=True))
    assert (await store.registry.app("app-1")) == external_app("app-1", displayName="again")


async def test_a_unit_of_work_sees_its_own_writes(store: Store) -> None:
    def scenario(tx: Tx) -> tuple[ExternalApp | None, ExternalApp | None, ExternalApp | None]:
        tx.apps.put(external_app("app-1"), new=True)
        created = tx.apps.get("app-1")
        tx.apps.put(external_app("app-1", 2, displayName="renamed"), new=False)
        updated = tx.apps.get("app-1")
        tx.apps.delete("app-1")
        return created, updated, tx.apps.get("app-1")

    created, updated, deleted = await store.write(scenario)
    assert created is not None and created.version == 1
    assert updated is not None and (updated.version, updated.display_name) == (2, "renamed")
    assert deleted is None


async def test_a_failed_unit_of_work_leaves_no_trace_and_spares_the_others(store: Store) -> None:
    await store.write(lambda tx: tx.apps.put(external_app("app-1"), new=True))

    def update_then_fail(tx: Tx) -> None:
        tx.apps.put(external_app("app-1", 2, displayName="lost"), new=False)
        tx.apps.put(external_app("app-9"), new=True)
        tx.apps.delete("app-1")
        raise RuntimeError("refused")

    results = await asyncio.gather(
        store.write(update_then_fail),
        store.write(lambda tx: tx.apps.put(external_app("app-2"), new=True)),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError) and results[1] is None
    assert await store.registry.apps() == [external_app("app-1"), external_app("app-2")]
