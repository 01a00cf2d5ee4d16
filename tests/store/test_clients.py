"""Store contract for OAuth2 clients and AS Service ID provisioning, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from asgate.idm.models import Client
from asgate.store import AsSvcIdTakenError, ClientExistsError, Store


def client(client_id: str, **kw: object) -> Client:
    now = datetime.now(UTC)
    return Client(client_id=client_id, scopes=("msgs-asregistration",), created_at=now, updated_at=now, **kw)  # type: ignore[arg-type]


async def test_add_get_list_remove(store: Store) -> None:
    await store.clients.add(client("b", as_svc_ids=("AS2", "AS3"), attributes={"tier": "gold"}))
    await store.clients.add(client("a", secret_hash="h", redirect_uris=("http://127.0.0.1/cb",)))
    got = await store.clients.get("b")
    assert got is not None and got.as_svc_ids == ("AS2", "AS3") and got.attributes == {"tier": "gold"}
    assert [c.client_id for c in await store.clients.all()] == ["a", "b"]
    assert await store.clients.remove("b") is True
    assert await store.clients.remove("b") is False
    assert await store.clients.get("b") is None


async def test_duplicate_client_is_refused(store: Store) -> None:
    await store.clients.add(client("a"))
    with pytest.raises(ClientExistsError):
        await store.clients.add(client("a"))


async def test_an_as_svc_id_belongs_to_one_client_only(store: Store) -> None:
    await store.clients.add(client("a", as_svc_ids=("AS1",)))
    with pytest.raises(AsSvcIdTakenError) as err:
        await store.clients.add(client("b", as_svc_ids=("AS1",)))
    assert err.value.owner == "a"
    assert await store.clients.get("b") is None  # nothing half-written
    with pytest.raises(AsSvcIdTakenError):
        await store.clients.add(client("c", as_svc_ids=("AS9", "AS1")))
    assert await store.clients.get("c") is None


async def test_update_replaces_as_svc_ids_and_frees_the_old_ones(store: Store) -> None:
    await store.clients.add(client("a", as_svc_ids=("AS1",)))
    updated = await store.clients.update("a", as_svc_ids=("AS2",), name="AS one")
    assert updated is not None and updated.as_svc_ids == ("AS2",) and updated.name == "AS one"
    await store.clients.add(client("b", as_svc_ids=("AS1",)))  # AS1 is free again
    assert await store.clients.update("missing", name="x") is None


async def test_removing_a_client_frees_its_as_svc_ids(store: Store) -> None:
    await store.clients.add(client("a", as_svc_ids=("AS1",)))
    await store.clients.remove("a")
    await store.clients.add(client("b", as_svc_ids=("AS1",)))
    got = await store.clients.get("b")
    assert got is not None and got.as_svc_ids == ("AS1",)
