"""The registry's reads on the async engine (the view, the admin API, the CLI): no transaction of
the group committer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, tuple_
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from asgate.domain.registry import ApplicationProfile, ExternalApp, Grant
from asgate.store.registry._rows import (
    IN_CHUNK,
    Change,
    Delivery,
    InstanceRecord,
    ProfileRecord,
    Subscription,
    TargetState,
    app,
    change,
    delivery,
    grant,
    instance,
    profile,
    subscription,
    target,
)
from asgate.store.registry.access_servers import AccessServerRecord, access_server
from asgate.store.registry.changes import last_of
from asgate.store.registry.stats import RegistryStats, read_stats
from asgate.store.schema_registry import (
    access_servers,
    app_profile_versions,
    app_profiles,
    change_log,
    external_apps,
    notifications,
    sas_targets,
    service_instances,
    subscriptions,
    user_grants,
)


class RegistryStore:
    """The registry's readers (``store.registry``); writes go through ``store.write`` and ``tx``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _rows(self, query: Any) -> list[RowMapping]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).mappings().all())

    async def instance(self, instance_id: str) -> InstanceRecord | None:
        rows = await self._rows(
            select(service_instances).where(service_instances.c.service_instance_id == instance_id)
        )
        return instance(rows[0]) if rows else None

    async def instances(
        self,
        *,
        after: str | None = None,
        limit: int | None = None,
        service_type: str | None = None,
        client_id: str | None = None,
    ) -> list[InstanceRecord]:
        c = service_instances.c
        query = select(service_instances).order_by(c.service_instance_id)
        if after is not None:
            query = query.where(c.service_instance_id > after)
        if service_type is not None:
            query = query.where(c.service_type == service_type)
        if client_id is not None:
            query = query.where(c.client_id == client_id)
        if limit is not None:
            query = query.limit(limit)
        return [instance(r) for r in await self._rows(query)]

    async def pools(self, pools: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[InstanceRecord]]:
        """The instances of many pools, one query per 250 pools (every pool asked for is a key)."""
        c = service_instances.c
        found: dict[tuple[str, str], list[InstanceRecord]] = {pool: [] for pool in pools}
        for start in range(0, len(pools), IN_CHUNK // 2):
            chunk = pools[start : start + IN_CHUNK // 2]
            query = select(service_instances).where(tuple_(c.service_type, c.service_name).in_(chunk))
            for row in await self._rows(query.order_by(c.service_instance_id)):
                record = instance(row)
                found[record.pool].append(record)
        return found

    async def grant(self, app_id: str, mc_service_id: str) -> Grant | None:
        c = user_grants.c
        rows = await self._rows(
            select(user_grants).where(c.app_id == app_id, c.mc_service_id == mc_service_id)
        )
        return grant(rows[0]) if rows else None

    async def app(self, client_id: str) -> ExternalApp | None:
        rows = await self._rows(select(external_apps).where(external_apps.c.client_id == client_id))
        return app(rows[0]) if rows else None

    async def apps(self) -> list[ExternalApp]:
        return [app(r) for r in await self._rows(select(external_apps).order_by(external_apps.c.client_id))]

    async def grants(self, *, app_id: str | None = None, mc_service_id: str | None = None) -> list[Grant]:
        c = user_grants.c
        query = select(user_grants).order_by(c.app_id, c.mc_service_id)
        if app_id is not None:
            query = query.where(c.app_id == app_id)
        if mc_service_id is not None:
            query = query.where(c.mc_service_id == mc_service_id)
        return [grant(r) for r in await self._rows(query)]

    async def profile(self, app_profile_id: str) -> ProfileRecord | None:
        rows = await self._rows(select(app_profiles).where(app_profiles.c.app_profile_id == app_profile_id))
        return profile(rows[0]) if rows else None

    async def profile_version(self, app_profile_id: str, version: int) -> ApplicationProfile | None:
        c = app_profile_versions.c
        rows = await self._rows(
            select(app_profile_versions).where(c.app_profile_id == app_profile_id, c.version == version)
        )
        return ApplicationProfile.model_validate_json(rows[0]["profile"]) if rows else None

    async def profiles(self, *, app_id: str | None = None) -> list[ProfileRecord]:
        query = select(app_profiles).order_by(app_profiles.c.app_profile_index)
        if app_id is not None:
            query = query.where(app_profiles.c.app_id == app_id)
        return [profile(r) for r in await self._rows(query)]

    async def subscription(self, app_id: str) -> Subscription | None:
        rows = await self._rows(select(subscriptions).where(subscriptions.c.app_id == app_id))
        return subscription(rows[0]) if rows else None

    async def changes(
        self, after: int, limit: int = 1000, kinds: Sequence[str] | None = None
    ) -> list[Change]:
        c = change_log.c
        query = select(change_log).where(c.seq > after).order_by(c.seq).limit(limit)
        if kinds is not None:
            query = query.where(c.kind.in_(list(kinds)))
        return [change(r) for r in await self._rows(query)]

    async def changed_keys(self, after: int, limit: int = 5000) -> list[tuple[int, str, str]]:
        """``(seq, kind, key)`` of the changes after ``after``: what changed, without the payloads (a
        pool change can log 10,000 profiles that a reader of keys need not decode)."""
        c = change_log.c
        query = select(c.seq, c.kind, c.key).where(c.seq > after).order_by(c.seq).limit(limit)
        return [(r["seq"], r["kind"], r["key"]) for r in await self._rows(query)]

    async def last_seq_of(self, kinds: Sequence[str]) -> int:
        """The sequence number of the newest change of ``kinds`` (0: none)."""
        async with self._engine.connect() as conn:
            return int((await conn.execute(last_of(kinds))).scalar() or 0)

    async def issued(self, sequence: int, kinds: Sequence[str]) -> bool:
        """Whether ``sequence`` is 0 (nothing yet) or the number of a change of ``kinds`` in the log."""
        if sequence == 0:
            return True
        c = change_log.c
        query = select(c.seq).where(c.seq == sequence, c.kind.in_(list(kinds)))
        async with self._engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    async def last_seq(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.max(change_log.c.seq)))).scalar() or 0)

    async def deliveries(
        self,
        *,
        state: str | None = None,
        app_id: str | None = None,
        after: int | None = None,
        limit: int = 100,
    ) -> list[Delivery]:
        c = notifications.c
        query = select(notifications).order_by(c.id).limit(limit)
        if state is not None:
            query = query.where(c.state == state)
        if app_id is not None:
            query = query.where(c.app_id == app_id)
        if after is not None:
            query = query.where(c.id > after)
        return [delivery(r) for r in await self._rows(query)]

    async def targets(self) -> list[TargetState]:
        rows = await self._rows(select(sas_targets).order_by(sas_targets.c.url))
        return [target(r) for r in rows]

    async def stats(self, kinds: Sequence[str]) -> RegistryStats:
        """Instances by state, the outbox's pending notifications, the newest change of ``kinds``
        and each access server's acknowledged sequence (the registry's gauges)."""
        async with self._engine.connect() as conn:
            return await read_stats(conn, kinds)

    async def access_servers(self) -> list[AccessServerRecord]:
        """The access servers that registered themselves (issue 10), live or silent."""
        rows = await self._rows(select(access_servers).order_by(access_servers.c.sas_id))
        return [access_server(r) for r in rows]
