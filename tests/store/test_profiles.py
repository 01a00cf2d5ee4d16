"""Store contract for application profiles and their versions (``tx.profiles``,
``store.registry.profile``/``profile_version``/``profiles``), on every backend: one profile per
application and pool, unique indexes, every version kept and readable while the profile lives."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from asgate.domain.registry import ApplicationProfile, ProfileEdit, ServiceCapabilities
from asgate.store import Store
from asgate.store.registry import ProfileRecord
from asgate.store.tx import Tx

AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
REQUESTED = ServiceCapabilities(service_type="GM", api_version="v1", capabilities=["groups"])
EDIT = ProfileEdit.model_validate({"maxPriority": "mcpttp.3"})


def record(
    profile_id: str,
    index: int,
    *,
    app_id: str = "app-1",
    pool: tuple[str, str] = ("GM", "gms"),
    version: int = 1,
    requested: ServiceCapabilities | None = REQUESTED,
    edit: ProfileEdit | None = None,
) -> ProfileRecord:
    profile = ApplicationProfile.model_validate(
        {
            "appProfileId": profile_id,
            "appId": app_id,
            "authorizedService": pool[0],
            "serviceName": pool[1],
            "appProfileIndex": index,
            "serviceLocationInformation": f"https://sas.example/{index}",
            "serviceInterfaceDescription": {
                "referencePoints": ["CSC-2"],
                "protocols": ["HTTP"],
                "versions": [{"apiVersion": f"v{version}"}],
                **({"maxPriority": edit.max_priority} if edit and edit.max_priority else {}),
            },
            "version": version,
            "updatedAt": (AT + timedelta(minutes=version)).isoformat(),
        }
    )
    return ProfileRecord(profile, requested, edit)


def next_version(old: ProfileRecord, *, edit: ProfileEdit | None = None) -> ProfileRecord:
    p = old.profile
    return record(
        p.app_profile_id,
        p.app_profile_index,
        app_id=p.app_id,
        pool=(p.authorized_service, p.service_name),
        version=p.version + 1,
        requested=old.requested,
        edit=edit or old.edit,
    )


async def test_insert_then_get_returns_the_profile_and_what_it_was_built_from(store: Store) -> None:
    first = record("p1", 1)
    bare = record("p2", 2, pool=("GM", "other"), requested=None)
    await store.write(lambda tx: tx.profiles.insert(first))
    await store.write(lambda tx: tx.profiles.insert(bare))

    assert await store.registry.profile("p1") == first
    assert await store.write(lambda tx: tx.profiles.get("p1")) == first
    got = await store.registry.profile("p2")
    assert got == bare and got is not None and (got.requested, got.edit) == (None, None)
    assert await store.registry.profile_version("p1", 1) == first.profile  # the first version too
    assert await store.registry.profile("p3") is None
    assert await store.write(lambda tx: tx.profiles.get("p3")) is None


async def test_one_profile_per_application_and_pool(store: Store) -> None:
    await store.write(lambda tx: tx.profiles.insert(record("p1", 1)))
    with pytest.raises(IntegrityError):
        await store.write(lambda tx: tx.profiles.insert(record("p2", 2)))  # app-1 on GM/gms again
    # Another pool of the same application, or the same pool for another application: fine.
    await store.write(lambda tx: tx.profiles.insert(record("p2", 2, pool=("GM", "west"))))
    await store.write(lambda tx: tx.profiles.insert(record("p3", 3, app_id="app-2")))
    assert [r.profile.app_profile_id for r in await store.registry.profiles()] == ["p1", "p2", "p3"]


async def test_indexes_are_unique_and_next_index_is_above_every_live_one(store: Store) -> None:
    assert await store.write(lambda tx: tx.profiles.next_index()) == 1

    def insert_two(tx: Tx) -> int:
        tx.profiles.insert(record("p1", tx.profiles.next_index()))
        tx.profiles.insert(record("p2", tx.profiles.next_index(), pool=("GM", "west")))
        return tx.profiles.next_index()

    assert await store.write(insert_two) == 3
    with pytest.raises(IntegrityError):  # an index is never shared: the access server routes by it
        await store.write(lambda tx: tx.profiles.insert(record("p3", 2, app_id="app-2")))
    await store.write(lambda tx: tx.profiles.delete("p1"))
    assert await store.write(lambda tx: tx.profiles.next_index()) == 3
    assert [r.profile.app_profile_index for r in await store.registry.profiles()] == [2]


async def test_find_by_application_and_pool_in_index_order(store: Store) -> None:
    def insert_all(tx: Tx) -> None:
        tx.profiles.insert(record("c", 3, app_id="app-2"))
        tx.profiles.insert(record("a", 1, pool=("GM", "west")))
        tx.profiles.insert(record("b", 2))
        tx.profiles.insert(record("d", 4, app_id="app-2", pool=("CM", "cms")))

    await store.write(insert_all)

    def ids(records: list[ProfileRecord]) -> list[str]:
        return [r.profile.app_profile_id for r in records]

    assert ids(await store.write(lambda tx: tx.profiles.find())) == ["a", "b", "c", "d"]
    assert ids(await store.write(lambda tx: tx.profiles.find(app_id="app-1"))) == ["a", "b"]
    assert ids(await store.write(lambda tx: tx.profiles.find(pool=("GM", "gms")))) == ["b", "c"]
    assert ids(await store.write(lambda tx: tx.profiles.find(app_id="app-2", pool=("GM", "gms")))) == ["c"]
    assert await store.write(lambda tx: tx.profiles.find(pool=("GM", "none"))) == []
    assert ids(await store.registry.profiles(app_id="app-2")) == ["c", "d"]


async def test_update_many_writes_a_new_version_of_each_and_keeps_the_old_ones(store: Store) -> None:
    p1, p2, p3 = record("p1", 1), record("p2", 2, pool=("GM", "west")), record("p3", 3, app_id="app-2")

    def insert_all(tx: Tx) -> None:
        for r in (p1, p2, p3):
            tx.profiles.insert(r)

    await store.write(insert_all)
    p1v2, p2v2 = next_version(p1, edit=EDIT), next_version(p2)
    await store.write(lambda tx: tx.profiles.update_many([p1v2, p2v2]))
    p1v3 = next_version(p1v2)
    await store.write(lambda tx: tx.profiles.update_many([p1v3]))
    await store.write(lambda tx: tx.profiles.update_many([]))  # nothing changed: nothing written

    assert await store.registry.profile("p1") == p1v3
    assert (await store.registry.profile("p1")).edit == EDIT  # type: ignore[union-attr]
    assert await store.registry.profile("p2") == p2v2
    assert await store.registry.profile("p3") == p3  # untouched
    history = [await store.registry.profile_version("p1", v) for v in (1, 2, 3, 4)]
    assert history == [p1.profile, p1v2.profile, p1v3.profile, None]
    # The creation index and the pool never move with a new version.
    assert [r.profile.app_profile_index for r in await store.registry.profiles()] == [1, 2, 3]


async def test_a_version_is_written_once(store: Store) -> None:
    p1 = record("p1", 1)
    await store.write(lambda tx: tx.profiles.insert(p1))
    await store.write(lambda tx: tx.profiles.update_many([next_version(p1)]))
    clash = next_version(p1, edit=EDIT)  # version 2 again, with other content
    with pytest.raises(IntegrityError):
        await store.write(lambda tx: tx.profiles.update_many([clash]))
    assert await store.registry.profile("p1") == next_version(p1)
    assert await store.registry.profile_version("p1", 2) == next_version(p1).profile


async def test_delete_removes_the_profile_with_its_history_and_only_it(store: Store) -> None:
    p1, p2 = record("p1", 1), record("p2", 2, pool=("GM", "west"))

    def insert_all(tx: Tx) -> None:
        tx.profiles.insert(p1)
        tx.profiles.insert(p2)
        tx.profiles.update_many([next_version(p1)])

    await store.write(insert_all)
    await store.write(lambda tx: tx.profiles.delete("p1"))
    await store.write(lambda tx: tx.profiles.delete("p1"))  # already gone: nothing happens

    assert await store.registry.profile("p1") is None
    assert [await store.registry.profile_version("p1", v) for v in (1, 2)] == [None, None]
    assert await store.registry.profile("p2") == p2
    assert await store.registry.profile_version("p2", 1) == p2.profile
    # The application may be authorized for the pool again: a new profile from version 1.
    again = record("p1-again", 3)
    await store.write(lambda tx: tx.profiles.insert(again))
    assert await store.registry.profile_version("p1-again", 1) == again.profile


async def test_a_failed_unit_of_work_leaves_no_trace_and_spares_the_others(store: Store) -> None:
    p1 = record("p1", 1)
    await store.write(lambda tx: tx.profiles.insert(p1))

    def change_then_fail(tx: Tx) -> None:
        tx.profiles.update_many([next_version(p1, edit=EDIT)])
        assert tx.profiles.get("p1") == next_version(p1, edit=EDIT)  # seen inside the unit of work
        tx.profiles.insert(record("p9", tx.profiles.next_index(), app_id="app-9"))
        raise RuntimeError("refused")

    other = record("p2", 2, app_id="app-2")
    results = await asyncio.gather(
        store.write(change_then_fail),
        store.write(lambda tx: tx.profiles.insert(other)),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError) and results[1] is None
    assert await store.registry.profile("p1") == p1
    assert await store.registry.profile_version("p1", 2) is None
    assert [r.profile.app_profile_id for r in await store.registry.profiles()] == ["p1", "p2"]
