"""OAuth2 clients, the AS Service IDs provisioned for them and the pools they may serve.

Writes go through the unit of work (``tx.clients``, :class:`ClientsTx`); reads are async methods of
:class:`ClientStore`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from asgate.domain.idm import Client
from asgate.store.schema import client_as_svc_ids, client_service_pools, clients

_CHUNK = 5000


class ClientExistsError(Exception):
    pass


# asgate's own roles authenticate to each other as "asgate-registry", "asgate-access"...: a client of
# that name provisioned by mistake (or by a hostile import) would be taken for one of them, e.g. by
# the SAS's CSC-15 server (sas_csc15_clients). The prefix is reserved.
RESERVED_PREFIX = "asgate-"


class ReservedClientIdError(ValueError):
    def __init__(self, client_id: str) -> None:
        super().__init__(f"client IDs starting with {RESERVED_PREFIX!r} are reserved for asgate's own roles")
        self.client_id = client_id


class AsSvcIdTakenError(Exception):
    def __init__(self, as_svc_id: str, owner: str) -> None:
        super().__init__(f"AS Service ID {as_svc_id!r} is already provisioned for client {owner!r}")
        self.as_svc_id = as_svc_id
        self.owner = owner


class ClientsTx:
    """OAuth2 clients inside one unit of work (``tx.clients``).

    Promises: a client ID names one client (:class:`ClientExistsError`), IDs with the reserved
    prefix are refused (:class:`ReservedClientIdError`), an AS Service ID is provisioned for one
    client only (:class:`AsSvcIdTakenError`).
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def add(self, client: Client) -> Client:
        """Insert a client with its AS Service IDs and pools."""
        if client.client_id.lower().startswith(RESERVED_PREFIX):
            raise ReservedClientIdError(client.client_id)
        if self.get(client.client_id) is not None:
            raise ClientExistsError(client.client_id)
        self._conn.execute(insert(clients).values(**_row(client)))
        self._set_as_svc_ids(client.client_id, client.as_svc_ids)
        self._set_pools(client.client_id, client.service_pools)
        return client

    def get(self, client_id: str) -> Client | None:
        row = self._conn.execute(select(clients).where(clients.c.client_id == client_id)).mappings().first()
        if row is None:
            return None
        ids = self._conn.execute(
            select(client_as_svc_ids.c.as_svc_id)
            .where(client_as_svc_ids.c.client_id == client_id)
            .order_by(client_as_svc_ids.c.as_svc_id)
        )
        p = client_service_pools.c
        pools = self._conn.execute(select(p.pattern).where(p.client_id == client_id).order_by(p.pattern))
        return _client(row, list(ids.scalars()), list(pools.scalars()))

    def update(self, client_id: str, **changes: Any) -> Client | None:
        """Change fields of a client (``as_svc_ids`` and ``service_pools`` replace the whole set);
        ``None`` if there is no such client."""
        current = self.get(client_id)
        if current is None:
            return None
        updated = current.model_copy(update={**changes, "updated_at": datetime.now(UTC)})
        row = _row(updated)
        del row["client_id"], row["created_at"]
        self._conn.execute(update(clients).where(clients.c.client_id == client_id).values(**row))
        if "as_svc_ids" in changes:
            self._set_as_svc_ids(client_id, updated.as_svc_ids)
        if "service_pools" in changes:
            self._set_pools(client_id, updated.service_pools)
        return updated

    def remove(self, client_id: str) -> bool:
        self._conn.execute(delete(client_as_svc_ids).where(client_as_svc_ids.c.client_id == client_id))
        self._conn.execute(delete(client_service_pools).where(client_service_pools.c.client_id == client_id))
        return bool(self._conn.execute(delete(clients).where(clients.c.client_id == client_id)).rowcount)

    def _set_as_svc_ids(self, client_id: str, as_svc_ids: Sequence[str]) -> None:
        self._conn.execute(delete(client_as_svc_ids).where(client_as_svc_ids.c.client_id == client_id))
        unique = list(dict.fromkeys(as_svc_ids))
        # Chunked: drivers cap the parameters of one statement (asyncpg: 32,767).
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            taken = self._conn.execute(
                select(client_as_svc_ids.c.as_svc_id, client_as_svc_ids.c.client_id).where(
                    client_as_svc_ids.c.as_svc_id.in_(chunk)
                )
            )
            for as_svc_id, owner in taken:
                raise AsSvcIdTakenError(as_svc_id, owner)
            try:
                self._conn.execute(
                    insert(client_as_svc_ids), [{"as_svc_id": a, "client_id": client_id} for a in chunk]
                )
            except IntegrityError as exc:  # a concurrent provisioning won the race
                raise AsSvcIdTakenError(chunk[0], "another client") from exc

    def _set_pools(self, client_id: str, patterns: Sequence[str]) -> None:
        p = client_service_pools
        self._conn.execute(delete(p).where(p.c.client_id == client_id))
        unique = list(dict.fromkeys(patterns))
        if unique:
            self._conn.execute(
                insert(p), [{"client_id": client_id, "pattern": pattern} for pattern in unique]
            )


class ClientStore:
    """Reads of clients (writes: :class:`ClientsTx` through ``store.write``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, client_id: str) -> Client | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(clients).where(clients.c.client_id == client_id)))
                .mappings()
                .first()
            )
            if row is None:
                return None
            ids = await conn.execute(
                select(client_as_svc_ids.c.as_svc_id)
                .where(client_as_svc_ids.c.client_id == client_id)
                .order_by(client_as_svc_ids.c.as_svc_id)
            )
            p = client_service_pools.c
            pools = await conn.execute(select(p.pattern).where(p.client_id == client_id).order_by(p.pattern))
            return _client(row, list(ids.scalars()), list(pools.scalars()))

    async def all(self) -> list[Client]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(clients).order_by(clients.c.client_id))).mappings().all()
            ids = await conn.execute(select(client_as_svc_ids).order_by(client_as_svc_ids.c.as_svc_id))
            by_client: dict[str, list[str]] = {}
            for as_svc_id, client_id in ids:
                by_client.setdefault(client_id, []).append(as_svc_id)
            pools: dict[str, list[str]] = {}
            p = client_service_pools.c
            for client_id, pattern in await conn.execute(select(p.client_id, p.pattern).order_by(p.pattern)):
                pools.setdefault(client_id, []).append(pattern)
        return [
            _client(row, by_client.get(row["client_id"], []), pools.get(row["client_id"], [])) for row in rows
        ]

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(clients))).scalar_one())


def _row(client: Client) -> dict[str, Any]:
    return {
        "client_id": client.client_id,
        "name": client.name,
        "secret_hash": client.secret_hash,
        "scopes": list(client.scopes),
        "redirect_uris": list(client.redirect_uris),
        "attributes": dict(client.attributes),
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }


def _client(row: RowMapping, as_svc_ids: Sequence[str], service_pools: Sequence[str]) -> Client:
    return Client(
        client_id=row["client_id"],
        name=row["name"],
        secret_hash=row["secret_hash"],
        scopes=tuple(row["scopes"]),
        redirect_uris=tuple(row["redirect_uris"]),
        as_svc_ids=tuple(as_svc_ids),
        service_pools=tuple(service_pools),
        attributes=row["attributes"] or {},
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
