"""Store contract for user authorizations (``tx.grants``, ``store.registry.grant``/``grants``), on every
backend: one grant per application and MC service user, what it allows, its versions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from asgate.domain.registry import AllowedService, Grant
from asgate.store import Store
from asgate.store.tx import Tx

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
GM_GROUPS = AllowedService(service_type="GM", service_name="gms", capabilities=["groups"])


def grant(app_id: str, user: str, version: int = 1, services: list[AllowedService] | None = None) -> Grant:
    return Grant(app_id=app_id, mc_service_id=user, services=services, version=version, created_at=AT)


async def test_put_then_get_returns_the_grant_with_or_without_a_service_list(store: Store) -> None:
    narrow = grant("app-1", "alice@mc.example", services=[GM_GROUPS, AllowedService(service_type="CM")])
    wide = grant("app-1", "bob@mc.example")  # services None: every service the application may use
    await store.write(lambda tx: tx.grants.put(narrow, new=True))
    await store.write(lambda tx: tx.grants.put(wide, new=True))

    assert await store.registry.grant("app-1", "alice@mc.example") == narrow
    assert await store.write(lambda tx: tx.grants.get("app-1", "alice@mc.example")) == narrow
    got = await store.registry.grant("app-1", "bob@mc.example")
    assert got == wide and got is not None and got.services is None
    assert await store.registry.grant("app-2", "alice@mc.example") is None
    assert await store.write(lambda tx: tx.grants.get("app-1", "carol@mc.example")) is None


async def test_one_grant_per_application_and_user(store: Store) -> None:
    await store.write(lambda tx: tx.grants.put(grant("app-1", "alice"), new=True))
    with pytest.raises(IntegrityError):
        await store.write(lambda tx: tx.grants.put(grant("app-1", "alice", services=[GM_GROUPS]), new=True))
    # The same user may be granted through another application.
    await store.write(lambda tx: tx.grants.put(grant("app-2", "alice"), new=True))
    assert [(g.app_id, g.services) for g in await store.registry.grants(mc_service_id="alice")] == [
        ("app-1", None),
        ("app-2", None),
    ]


async def test_an_update_replaces_the_services_and_version_and_keeps_the_creation_time(store: Store) -> None:
    await store.write(lambda tx: tx.grants.put(grant("app-1", "alice", services=[GM_GROUPS]), new=True))
    later = grant("app-1", "alice", 2).model_copy(update={"created_at": AT + timedelta(days=1)})
    await store.write(lambda tx: tx.grants.put(later, new=False))

    got = await store.registry.grant("app-1", "alice")
    assert got == grant("app-1", "alice", 2)  # widened to every service, created at AT still
    narrowed = grant("app-1", "alice", 3, services=[AllowedService(service_type="CM")])
    await store.write(lambda tx: tx.grants.put(narrowed, new=False))
    assert await store.registry.grant("app-1", "alice") == narrowed


async def test_grants_are_listed_by_application_then_user_with_filters(store: Store) -> None:
    pairs = [("app-2", "alice"), ("app-1", "carol"), ("app-1", "alice"), ("app-2", "bob")]

    def put_all(tx: Tx) -> None:
        for app_id, user in pairs:
            tx.grants.put(grant(app_id, user), new=True)

    await store.write(put_all)
    ordered = [("app-1", "alice"), ("app-1", "carol"), ("app-2", "alice"), ("app-2", "bob")]
    assert [(g.app_id, g.mc_service_id) for g in await store.registry.grants()] == ordered
    assert [(g.app_id, g.mc_service_id) for g in await store.write(lambda tx: tx.grants.all())] == ordered
    assert [g.mc_service_id for g in await store.registry.grants(app_id="app-2")] == ["alice", "bob"]
    assert [g.app_id for g in await store.registry.grants(mc_service_id="alice")] == ["app-1", "app-2"]
    assert await store.registry.grants(app_id="app-1", mc_service_id="bob") == []
    of_app = await store.write(lambda tx: tx.grants.of_app("app-1"))
    assert sorted(g.mc_service_id for g in of_app) == ["alice", "carol"]
    assert await store.write(lambda tx: tx.grants.of_app("app-3")) == []


async def test_delete_removes_only_that_grant_and_is_idempotent(store: Store) -> None:
    def put_all(tx: Tx) -> None:
        tx.grants.put(grant("app-1", "alice"), new=True)
        tx.grants.put(grant("app-1", "bob"), new=True)
        tx.grants.put(grant("app-2", "alice"), new=True)

    await store.write(put_all)
    await store.write(lambda tx: tx.grants.delete("app-1", "alice"))
    await store.write(lambda tx: tx.grants.delete("app-1", "alice"))  # already gone: nothing happens

    remaining = [(g.app_id, g.mc_service_id) for g in await store.registry.grants()]
    assert remaining == [("app-1", "bob"), ("app-2", "alice")]
    # Granted again later: a new grant (version 1) is allowed.
    await store.write(lambda tx: tx.grants.put(grant("app-1", "alice"), new=True))
    assert await store.registry.grant("app-1", "alice") == grant("app-1", "alice")


async def test_a_failed_unit_of_work_leaves_no_trace_and_spares_the_others(store: Store) -> None:
    await store.write(lambda tx: tx.grants.put(grant("app-1", "alice"), new=True))

    def revoke_then_fail(tx: Tx) -> None:
        tx.grants.put(grant("app-1", "alice", 2, services=[GM_GROUPS]), new=False)
        tx.grants.put(grant("app-1", "mallory"), new=True)
        assert tx.grants.get("app-1", "mallory") is not None  # the unit of work sees its writes
        tx.grants.delete("app-1", "alice")
        raise RuntimeError("refused")

    results = await asyncio.gather(
        store.write(revoke_then_fail),
        store.write(lambda tx: tx.grants.put(grant("app-2", "bob"), new=True)),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError) and results[1] is None
    assert await store.registry.grants() == [grant("app-1", "alice"), grant("app-2", "bob")]
