"""AS registrations of the MSGin5G Server (TS 23.554 8.2.5/8.2.6): typed data access only.

Writes go through the unit of work (``tx.registrations``, :class:`RegistrationsTx`); the decisions
(provisioning, replacement, ownership) live in :mod:`asgate.msgin5g.decisions`. Reads are async
methods of :class:`RegistrationStore`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from asgate.domain.msgin5g import ASProfile, Registration
from asgate.store.schema import as_registrations as t
from asgate.store.schema import client_as_svc_ids


class RegistrationsTx:
    """AS registrations inside one unit of work (``tx.registrations``).

    At most one registration per AS Service ID (a second :meth:`put` for it raises
    ``IntegrityError``): who may register, and what a new registration replaces, is the caller's
    decision (:mod:`asgate.msgin5g.decisions`). The methods are set-based, so that a batch of
    registrations costs a few statements, not a few per registration.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def owners(self, as_svc_ids: Collection[str]) -> dict[str, str]:
        """The client each of ``as_svc_ids`` is provisioned for (absent: provisioned for none)."""
        if not as_svc_ids:
            return {}
        c = client_as_svc_ids.c
        rows = self._conn.execute(select(c.as_svc_id, c.client_id).where(c.as_svc_id.in_(as_svc_ids)))
        return {as_svc_id: client_id for as_svc_id, client_id in rows}

    def get(self, registration_id: str) -> Registration | None:
        row = self._conn.execute(select(t).where(t.c.registration_id == registration_id)).mappings().first()
        return _registration(row) if row else None

    def put(self, *registrations: Registration) -> None:
        if registrations:
            self._conn.execute(insert(t), [_row(reg) for reg in registrations])

    def delete(self, registration_id: str) -> Registration | None:
        """Delete a registration; the deleted one, or ``None`` if there was none."""
        row = (
            self._conn.execute(delete(t).where(t.c.registration_id == registration_id).returning(t))
            .mappings()
            .first()
        )
        return _registration(row) if row else None

    def delete_for(self, as_svc_ids: Collection[str]) -> dict[str, str]:
        """Delete the registrations of ``as_svc_ids``: the id each one had, by AS Service ID."""
        if not as_svc_ids:
            return {}
        rows = self._conn.execute(
            delete(t).where(t.c.as_svc_id.in_(as_svc_ids)).returning(t.c.as_svc_id, t.c.registration_id)
        )
        return {as_svc_id: registration_id for as_svc_id, registration_id in rows}


class RegistrationStore:
    """Reads of AS registrations (writes: :class:`RegistrationsTx` through ``store.write``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, registration_id: str) -> Registration | None:
        async with self._engine.connect() as conn:
            row = (
                (await conn.execute(select(t).where(t.c.registration_id == registration_id)))
                .mappings()
                .first()
            )
        return _registration(row) if row else None

    async def scan(
        self,
        *,
        after: str | None = None,
        limit: int = 100,
        client_id: str | None = None,
        as_svc_id: str | None = None,
    ) -> list[Registration]:
        """Keyset pagination in creation order: cost is independent of how many are stored."""
        query = select(t).order_by(t.c.registration_id).limit(limit)
        if after is not None:
            query = query.where(t.c.registration_id > after)
        if client_id is not None:
            query = query.where(t.c.client_id == client_id)
        if as_svc_id is not None:
            query = query.where(t.c.as_svc_id == as_svc_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_registration(row) for row in rows]

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(t))).scalar_one())


def _row(reg: Registration) -> dict[str, Any]:
    return {
        "registration_id": reg.registration_id,
        "as_svc_id": reg.as_svc_id,
        "client_id": reg.client_id,
        "app_id": reg.app_id,
        "target_uri": reg.target_uri,
        # JSON text from pydantic's encoder: several times cheaper than a JSON column's json.dumps.
        "as_prof": reg.as_prof.dump_json().decode() if reg.as_prof else None,
        "registered_at": reg.registered_at,
    }


def _registration(row: RowMapping) -> Registration:
    prof = row["as_prof"]
    return Registration(
        registration_id=row["registration_id"],
        as_svc_id=row["as_svc_id"],
        client_id=row["client_id"],
        app_id=row["app_id"],
        target_uri=row["target_uri"],
        as_prof=ASProfile.model_validate_json(prof) if prof is not None else None,
        registered_at=row["registered_at"],
    )
