"""AS registrations of the MSGin5G Server (TS 23.554 8.2.5/8.2.6)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from asgate.msgin5g.models import ASProfile, Registration
from asgate.store.audit import append_tx, audit_row
from asgate.store.group_commit import GroupCommitter
from asgate.store.schema import as_registrations as t
from asgate.store.schema import client_as_svc_ids


class NotProvisionedError(Exception):
    """The AS Service ID is not provisioned for the registering client (TS 23.554 8.2.5 pre-condition 2)."""


class RegistrationStore:
    def __init__(self, engine: AsyncEngine, committer: GroupCommitter) -> None:
        self._engine = engine
        self._committer = committer

    async def register(self, registration: Registration) -> str | None:
        """Store ``registration``, replacing any live one for its AS Service ID.

        The AS Service ID must be provisioned for ``registration.client_id``; that is checked in the
        same transaction, so a provisioning change takes effect at once. Raises
        :class:`NotProvisionedError` otherwise (and audits the refusal). Returns the id of the
        registration it replaced, if any. Durable when it returns.
        """
        result: str | None | NotProvisionedError = await self._committer.submit(
            self._register_batch, registration
        )
        if isinstance(result, NotProvisionedError):
            raise result
        return result

    async def deregister(self, registration_id: str, actor: str) -> Registration | None:
        """Delete a registration; ``None`` if it does not exist (any more)."""
        result: Registration | None = await self._committer.submit(
            self._deregister_batch, (registration_id, actor)
        )
        return result

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

    async def load(self, registrations: Iterable[Registration], chunk: int = 5000) -> None:
        """Bulk insert (benchmarks and restores); no replacement, no audit."""
        rows = [_row(r) for r in registrations]
        async with self._engine.begin() as conn:
            for start in range(0, len(rows), chunk):
                await conn.execute(insert(t), rows[start : start + chunk])

    @staticmethod
    def _register_batch(conn: Connection, regs: list[Registration]) -> list[str | None | NotProvisionedError]:
        svc_ids = list(dict.fromkeys(r.as_svc_id for r in regs))
        provisioned = select(client_as_svc_ids).where(client_as_svc_ids.c.as_svc_id.in_(svc_ids))
        owners: dict[str, str] = {as_svc_id: owner for as_svc_id, owner in conn.execute(provisioned)}
        allowed = [reg for reg in regs if owners.get(reg.as_svc_id) == reg.client_id]
        deleted: Iterable[tuple[str, str]] = (
            conn.execute(
                delete(t)
                .where(t.c.as_svc_id.in_({reg.as_svc_id for reg in allowed}))
                .returning(t.c.as_svc_id, t.c.registration_id)
            )
            if allowed
            else []
        )
        live: dict[str, str] = {svc: reg_id for svc, reg_id in deleted}
        results: list[str | None | NotProvisionedError] = []
        events = []
        for reg in regs:  # applied in arrival order: a later one replaces an earlier one
            if owners.get(reg.as_svc_id) != reg.client_id:
                results.append(NotProvisionedError(reg.as_svc_id))
                reason = "AS Service ID not provisioned"
                events.append(
                    audit_row(
                        reg.client_id, "msgs.register", f"as-svc-id/{reg.as_svc_id}", "denied", reason=reason
                    )
                )
                continue
            prev = live.get(reg.as_svc_id)
            results.append(prev)
            live[reg.as_svc_id] = reg.registration_id
            details = {"asSvcId": reg.as_svc_id, "replaced": prev} if prev else {"asSvcId": reg.as_svc_id}
            events.append(
                audit_row(
                    reg.client_id, "msgs.register", f"as-registration/{reg.registration_id}", details=details
                )
            )
        winners = {reg.as_svc_id: reg for reg in allowed}
        if winners:
            conn.execute(insert(t), [_row(reg) for reg in winners.values()])
        append_tx(conn, events)
        return results

    @staticmethod
    def _deregister_batch(conn: Connection, items: list[tuple[str, str]]) -> list[Registration | None]:
        ids = list(dict.fromkeys(reg_id for reg_id, _ in items))
        rows = (conn.execute(delete(t).where(t.c.registration_id.in_(ids)).returning(t))).mappings().all()
        found = {row["registration_id"]: _registration(row) for row in rows}
        results: list[Registration | None] = []
        events = []
        for reg_id, actor in items:
            reg = found.pop(reg_id, None)  # a second delete of the same id in one batch finds nothing
            results.append(reg)
            if reg is not None:
                events.append(
                    audit_row(
                        actor,
                        "msgs.deregister",
                        f"as-registration/{reg_id}",
                        details={"asSvcId": reg.as_svc_id},
                    )
                )
        append_tx(conn, events)
        return results


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
