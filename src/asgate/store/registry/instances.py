"""Service instances (seed 7.4.2.2.9), inside a write transaction: ``tx.instances``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, text, update

from asgate.store.registry._rows import InstanceRecord, instance
from asgate.store.schema_registry import service_instances

Liveness = tuple[str, str, int, tuple[str, str]]  # owner, status, heartbeat period, pool


class Instances:
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, instance_id: str) -> InstanceRecord | None:
        row = self._conn.execute(
            select(service_instances).where(service_instances.c.service_instance_id == instance_id)
        )
        found = row.mappings().first()
        return instance(found) if found else None

    def put(self, record: InstanceRecord, *, new: bool) -> None:
        values = {
            "client_id": record.client_id,
            "service_type": record.registration.service_type,
            "service_name": record.registration.service_name,
            "registration": record.registration.dump_json().decode(),
            "status": record.status,
            "heartbeat_period": record.registration.heartbeat_period,
            "registered_at": record.registered_at,
            "last_heartbeat": record.last_heartbeat,
            "suspend_at": record.suspend_at,
            "remove_at": record.remove_at,
            "version": record.version,
        }
        if new:
            self._conn.execute(
                insert(service_instances).values(service_instance_id=record.service_instance_id, **values)
            )
        else:
            where = service_instances.c.service_instance_id == record.service_instance_id
            self._conn.execute(update(service_instances).where(where).values(**values))

    def delete(self, instance_id: str) -> None:
        self._conn.execute(
            delete(service_instances).where(service_instances.c.service_instance_id == instance_id)
        )

    def of_pool(self, pool: tuple[str, str]) -> list[InstanceRecord]:
        query = (
            select(service_instances)
            .where(service_instances.c.service_type == pool[0], service_instances.c.service_name == pool[1])
            .order_by(service_instances.c.service_instance_id)
        )
        return [instance(r) for r in self._conn.execute(query).mappings()]

    def sweeping(self) -> bool:
        """Take the liveness sweep for this transaction; False if another process is sweeping now.

        PostgreSQL: a transaction-level advisory lock (per schema), so two processes never sweep at
        once and none waits for the other; no leader to elect. SQLite: always True (the writer's
        ``BEGIN IMMEDIATE`` already serializes every process's sweeps)."""
        if self._conn.dialect.name != "postgresql":
            return True
        taken = self._conn.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtext('asgate.sweep.' || current_schema()))")
        )
        return bool(taken.scalar())

    def due(self, now: float, limit: int = 1000) -> list[InstanceRecord]:
        """The instances whose suspension or removal deadline has passed at ``now`` (on PostgreSQL
        locked, skipping one a heartbeat is reviving at this moment: the next sweep sees it again)."""
        c = service_instances.c
        query = (
            select(service_instances)
            .where(
                or_(
                    and_(c.status == "REGISTERED", c.suspend_at <= now),
                    and_(c.status == "SUSPENDED", c.remove_at <= now),
                )
            )
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [instance(r) for r in self._conn.execute(query).mappings()]

    def all(self) -> list[InstanceRecord]:
        query = select(service_instances).order_by(service_instances.c.service_instance_id)
        return [instance(r) for r in self._conn.execute(query).mappings()]

    def registered(self, service_types: set[str]) -> list[InstanceRecord]:
        """The REGISTERED instances of ``service_types`` (lower-case, compared case-insensitively)."""
        c = service_instances.c
        query = (
            select(service_instances)
            .where(c.status == "REGISTERED", func.lower(c.service_type).in_(sorted(service_types)))
            .order_by(c.service_instance_id)
        )
        return [instance(r) for r in self._conn.execute(query).mappings()]

    def liveness(self, ids: Sequence[str]) -> dict[str, Liveness]:
        """Owner, status, period and pool of the instances among ``ids`` that exist."""
        c = service_instances.c
        query = select(
            c.service_instance_id, c.client_id, c.status, c.heartbeat_period, c.service_type, c.service_name
        )
        rows = self._conn.execute(query.where(c.service_instance_id.in_(list(ids))))
        return {row[0]: (row[1], row[2], row[3], (row[4], row[5])) for row in rows}

    def set_liveness(
        self, instance_id: str, status: str, heartbeat: float, suspend_at: float, remove_at: float
    ) -> None:
        self._conn.execute(
            update(service_instances)
            .where(service_instances.c.service_instance_id == instance_id)
            .values(status=status, last_heartbeat=heartbeat, suspend_at=suspend_at, remove_at=remove_at)
        )

    def reprieve_all(self, started_at: float, missed: int, grace: float) -> int:
        """After a (re)start, every instance gets ``missed`` heartbeat periods again (see lifecycle)."""
        c = service_instances.c
        fresh_suspend = started_at + c.heartbeat_period * missed
        changed = self._conn.execute(
            update(service_instances)
            .where(c.suspend_at < fresh_suspend)
            .values(suspend_at=fresh_suspend, remove_at=fresh_suspend + grace)
        )
        return int(changed.rowcount or 0)
