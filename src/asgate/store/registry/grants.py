"""User authorizations (grants: which MC service users an application may act for), in a write
transaction: ``tx.grants``."""

from __future__ import annotations

import json

from sqlalchemy import Connection, delete, insert, select, update

from asgate.domain.registry import Grant
from asgate.store.registry._rows import grant
from asgate.store.schema_registry import user_grants


class Grants:
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, app_id: str, mc_service_id: str) -> Grant | None:
        c = user_grants.c
        query = select(user_grants).where(c.app_id == app_id, c.mc_service_id == mc_service_id)
        row = self._conn.execute(query).mappings().first()
        return grant(row) if row else None

    def put(self, item: Grant, *, new: bool) -> None:
        services = json.dumps([s.dump() for s in item.services]) if item.services else None
        if new:
            self._conn.execute(
                insert(user_grants).values(
                    app_id=item.app_id,
                    mc_service_id=item.mc_service_id,
                    services=services,
                    version=item.version,
                    created_at=item.created_at,
                )
            )
        else:
            c = user_grants.c
            self._conn.execute(
                update(user_grants)
                .where(c.app_id == item.app_id, c.mc_service_id == item.mc_service_id)
                .values(services=services, version=item.version)
            )

    def delete(self, app_id: str, mc_service_id: str) -> None:
        c = user_grants.c
        self._conn.execute(delete(user_grants).where(c.app_id == app_id, c.mc_service_id == mc_service_id))

    def of_app(self, app_id: str) -> list[Grant]:
        rows = self._conn.execute(select(user_grants).where(user_grants.c.app_id == app_id)).mappings()
        return [grant(r) for r in rows]

    def all(self) -> list[Grant]:
        query = select(user_grants).order_by(user_grants.c.app_id, user_grants.c.mc_service_id)
        return [grant(r) for r in self._conn.execute(query).mappings()]
