"""What the registry's gauges show (``asgate.registry.metrics``), read in one connection with three
small queries: instances counted by state, the outbox's pending notifications (count and oldest,
through the ``(state, next_attempt_at)`` index) with the newest CSC-15 sequence, and the sequence
each access server acknowledged (one row per access server)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from asgate.store.registry.changes import last_of
from asgate.store.schema_registry import notifications, sas_targets, service_instances


@dataclass(frozen=True)
class RegistryStats:
    instances: dict[str, int]  # state -> how many
    outbox_pending: int
    outbox_oldest: datetime | None  # when the oldest pending notification was queued
    last_seq: int  # the newest change of the kinds asked for (0: none)
    acked: dict[str, int]  # access server URL -> the sequence it acknowledged


async def read_stats(conn: AsyncConnection, kinds: Sequence[str]) -> RegistryStats:
    si, n, t = service_instances.c, notifications.c, sas_targets.c
    by_state = await conn.execute(select(si.status, func.count()).group_by(si.status))
    instances = {str(state): int(count) for state, count in by_state.all()}
    pending = select(func.count(), func.min(n.created_at)).where(n.state == "PENDING").subquery()
    row = (await conn.execute(select(pending, last_of(kinds).scalar_subquery().label("last_seq")))).one()
    acked = {str(url): int(seq) for url, seq in (await conn.execute(select(t.url, t.acked_seq))).all()}
    return RegistryStats(instances, int(row[0] or 0), row[1], int(row[2] or 0), acked)
