"""Pool ownership in the store (issue 8 item 1): the pools each service client may serve, read inside
the registry's write transactions (a revocation takes effect at the next write or heartbeat), and
the service interface description approved for each pool."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from asgate.domain.registry import Version
from asgate.store.schema import client_service_pools
from asgate.store.schema_registry import pool_interfaces

Pool = tuple[str, str]
_CHUNK = 2000


@dataclass
class PoolInterface:
    """What the administrator approved for one pool (``approved`` None: nothing yet)."""

    pool: Pool
    approved: list[Version] | None
    rejected: str | None  # digest of the offer refused
    version: int
    updated_by: str
    updated_at: datetime


def _interface(row: RowMapping) -> PoolInterface:
    approved = row["approved"]
    return PoolInterface(
        pool=(row["service_type"], row["service_name"]),
        approved=[Version.model_validate(v) for v in json.loads(approved)] if approved is not None else None,
        rejected=row["rejected"],
        version=row["version"],
        updated_by=row["updated_by"],
        updated_at=row["updated_at"],
    )


class PoolsTx:
    """Pool ownership and approved interfaces inside a write transaction: ``tx.pools``."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def patterns_of(self, client_ids: Sequence[str]) -> dict[str, list[str]]:
        """The pool patterns provisioned for each of ``client_ids`` (absent: none)."""
        c = client_service_pools.c
        query = select(c.client_id, c.pattern).where(c.client_id.in_(sorted(set(client_ids))))
        found: dict[str, list[str]] = {}
        for client_id, pattern in self._conn.execute(query):
            found.setdefault(client_id, []).append(pattern)
        return found

    def interfaces(self, pools: Sequence[Pool] | None = None) -> dict[Pool, PoolInterface]:
        """The approval rows of ``pools`` (every pool's when None)."""
        return _interfaces(self._conn, pools)

    def interface_put(self, item: PoolInterface, *, new: bool) -> None:
        values = {
            "approved": json.dumps([v.dump() for v in item.approved]) if item.approved is not None else None,
            "rejected": item.rejected,
            "version": item.version,
            "updated_by": item.updated_by[:256],
            "updated_at": item.updated_at,
        }
        t = pool_interfaces.c
        if new:
            self._conn.execute(
                insert(pool_interfaces).values(service_type=item.pool[0], service_name=item.pool[1], **values)
            )
        else:
            self._conn.execute(
                update(pool_interfaces)
                .where(t.service_type == item.pool[0], t.service_name == item.pool[1])
                .values(**values)
            )


def _interfaces(conn: Connection, pools: Sequence[Pool] | None) -> dict[Pool, PoolInterface]:
    t = pool_interfaces.c
    if pools is None:
        return {item.pool: item for item in map(_interface, conn.execute(select(pool_interfaces)).mappings())}
    wanted = list(set(pools))
    found: dict[Pool, PoolInterface] = {}
    for start in range(0, len(wanted), _CHUNK):  # drivers cap the parameters of one statement
        query = select(pool_interfaces).where(
            tuple_(t.service_type, t.service_name).in_(wanted[start : start + _CHUNK])
        )
        found.update((item.pool, item) for item in map(_interface, conn.execute(query).mappings()))
    return found


class PoolStore:
    """Readers for the registry's in-memory view."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def interfaces(self, pools: Sequence[Pool] | None = None) -> dict[Pool, PoolInterface]:
        async with self._engine.connect() as conn:
            return await conn.run_sync(_interfaces, pools)
