"""Store contract for OAuth2 clients and AS Service ID provisioning, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from asgate.domain.idm import Client
from asgate.store import AsSvcIdTakenError, ClientExistsError, ReservedClientIdError, Store
from asgate.store.tx import Tx


def client(client_id: str, **kw: object) -> Client:
    now = datetime.now(UTC)
    return Client(client_id=client_id, scopes=("msgs-asregistration",), created_at=now, updated_at=now, **kw)


async def test_add_get_list_remove(store: Store) -> None:
    await store.write(
        lambda tx: tx.clients.add(client("b", as_svc_ids=("AS2", "AS3"), attributes={"tier": "gold"}))
    )
    await store.write(
        lambda tx: tx.clients.add(client("a", secret_hash="h", redirect_uris=("http://127.0.0.1/cb",)))
    )
    got = await store.clients.get("b")
    assert got is not None and got.as_svc_ids == ("AS2", "AS3") and got.attributes == {"tier": "gold"}
    assert [c.client_id for c in await store.clients.all()] == ["a", "b"]
    assert await store.write(lambda tx: tx.clients.remove("b")) is True
    assert await store.write(lambda tx: tx.clients.remove("b")) is False
    assert await store.clients.get("b") is None


async def test_duplicate_client_is_refused(store: Store) -> None:
    await store.write(lambda tx: tx.clients.add(client("a")))
    with pytest.raises(ClientExistsError):
        await store.write(lambda tx: tx.clients.add(client("a")))


async def test_an_as_svc_id_belongs_to_one_client_only(store: Store) -> None:
    await store.write(lambda tx: tx.clients.add(client("a", as_svc_ids=("AS1",))))
    with pytest.raises(AsSvcIdTakenError) as err:
        await store.write(lambda tx: tx.clients.add(client("b", as_svc_ids=("AS1",))))
    assert err.value.owner == "a"
    assert await store.clients.get("b") is None  # nothing half-written
    with pytest.raises(AsSvcIdTakenError):
        await store.write(lambda tx: tx.clients.add(client("c", as_svc_ids=("AS9", "AS1"))))
    assert await store.clients.get("c") is None


async def test_update_replaces_as_svc_ids_and_frees_the_old_ones(store: Store) -> None:
    await store.write(lambda tx: tx.clients.add(client("a", as_svc_ids=("AS1",))))
    updated = await store.write(lambda tx: tx.clients.update("a", as_svc_ids=("AS2",), name="AS one"))
    assert updated is not None and updated.as_svc_ids == ("AS2",) and updated.name == "AS one"
    await store.write(lambda tx: tx.clients.add(client("b", as_svc_ids=("AS1",))))  # AS1 is free again
    assert await store.write(lambda tx: tx.clients.update("missing", name="x")) is None


async def test_removing_a_client_frees_its_as_svc_ids(store: Store) -> None:
    await store.write(lambda tx: tx.clients.add(client("a", as_svc_ids=("AS1",))))
    await store.write(lambda tx: tx.clients.remove("a"))
    await store.write(lambda tx: tx.clients.add(client("b", as_svc_ids=("AS1",))))
    got = await store.clients.get("b")
    assert got is not None and got.as_svc_ids == ("AS1",)


async def test_a_reserved_client_id_is_refused(store: Store) -> None:
    with pytest.raises(ReservedClientIdError):
        await store.write(lambda tx: tx.clients.add(client("asgate-registry")))
    assert await store.clients.get("asgate-registry") is None


async def test_a_refused_unit_of_work_leaves_nothing_behind(store: Store) -> None:
    await store.write(lambda tx: tx.clients.add(client("as-1", as_svc_ids=("AS1",))))

    def add_then_clash(tx: Tx) -> None:
        tx.clients.add(client("as-2", as_svc_ids=("AS2",)))
        tx.clients.add(client("as-3", as_svc_ids=("AS1",)))  # AS1 is as-1's

    with pytest.raises(AsSvcIdTakenError):
        await store.write(add_then_clash)
    assert [c.client_id for c in await store.clients.all()] == ["as-1"]


async def test_update_or_remove_of_an_unknown_client(store: Store) -> None:
    assert await store.write(lambda tx: tx.clients.update("nobody", name="x")) is None
    assert await store.write(lambda tx: tx.clients.remove("nobody")) is False
