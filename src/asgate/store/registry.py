"""Persistence of the service registry server.

Two kinds of functions: synchronous ``*_tx`` helpers that run inside a group-commit transaction
(the registry's transaction scripts compose them), and async readers on the engine. Rows holding
documents (registrations, policies, profiles) keep them as JSON text produced by pydantic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, tuple_, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from asgate.registry.models import (
    AllowedService,
    ApplicationProfile,
    ExternalApp,
    ExternalAppSpec,
    Grant,
    ProfileEdit,
    ServiceCapabilities,
    ServiceInstance,
    ServiceRegistration,
)
from asgate.store.schema_registry import (
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


def _epoch_dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass
class InstanceRecord:
    service_instance_id: str
    client_id: str
    registration: ServiceRegistration
    status: str
    registered_at: datetime
    last_heartbeat: float
    suspend_at: float
    remove_at: float
    version: int

    @property
    def pool(self) -> tuple[str, str]:
        return self.registration.service_type, self.registration.service_name

    def view(self) -> ServiceInstance:
        return ServiceInstance(
            **self.registration.model_dump(),
            service_instance_id=self.service_instance_id,
            status=self.status,
            client_id=self.client_id,
            registered_at=self.registered_at,
            last_heartbeat_at=_epoch_dt(self.last_heartbeat),
            suspend_at=_epoch_dt(self.suspend_at),
            remove_at=_epoch_dt(self.remove_at),
        )


@dataclass
class ProfileRecord:
    profile: ApplicationProfile
    requested: ServiceCapabilities | None
    edit: ProfileEdit | None

    @property
    def pool(self) -> tuple[str, str]:
        return self.profile.authorized_service, self.profile.service_name


@dataclass
class Subscription:
    app_id: str
    notification_destination: str | None
    websocket: bool


def _instance(row: RowMapping) -> InstanceRecord:
    return InstanceRecord(
        service_instance_id=row["service_instance_id"],
        client_id=row["client_id"],
        registration=ServiceRegistration.model_validate_json(row["registration"]),
        status=row["status"],
        registered_at=row["registered_at"],
        last_heartbeat=row["last_heartbeat"],
        suspend_at=row["suspend_at"],
        remove_at=row["remove_at"],
        version=row["version"],
    )


def _profile(row: RowMapping) -> ProfileRecord:
    basis = json.loads(row["requested"]) if row["requested"] else {}
    return ProfileRecord(
        profile=ApplicationProfile.model_validate_json(row["profile"]),
        requested=ServiceCapabilities.model_validate(basis["requested"]) if basis.get("requested") else None,
        edit=ProfileEdit.model_validate(basis["edit"]) if basis.get("edit") else None,
    )


def _app(row: RowMapping) -> ExternalApp:
    return ExternalApp(
        **ExternalAppSpec.model_validate_json(row["spec"]).model_dump(),
        client_id=row["client_id"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _grant(row: RowMapping) -> Grant:
    services = json.loads(row["services"]) if row["services"] else None
    return Grant(
        app_id=row["app_id"],
        mc_service_id=row["mc_service_id"],
        services=[AllowedService.model_validate(s) for s in services] if services else None,
        version=row["version"],
        created_at=row["created_at"],
    )


# ---------------------------------------------------------------- service instances (in transactions)


def instance_get_tx(conn: Connection, instance_id: str) -> InstanceRecord | None:
    row = conn.execute(
        select(service_instances).where(service_instances.c.service_instance_id == instance_id)
    )
    found = row.mappings().first()
    return _instance(found) if found else None


def instance_put_tx(conn: Connection, record: InstanceRecord, *, new: bool) -> None:
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
        conn.execute(
            insert(service_instances).values(service_instance_id=record.service_instance_id, **values)
        )
    else:
        where = service_instances.c.service_instance_id == record.service_instance_id
        conn.execute(update(service_instances).where(where).values(**values))


def instance_delete_tx(conn: Connection, instance_id: str) -> None:
    conn.execute(delete(service_instances).where(service_instances.c.service_instance_id == instance_id))


def pool_instances_tx(conn: Connection, pool: tuple[str, str]) -> list[InstanceRecord]:
    query = (
        select(service_instances)
        .where(service_instances.c.service_type == pool[0], service_instances.c.service_name == pool[1])
        .order_by(service_instances.c.service_instance_id)
    )
    return [_instance(r) for r in conn.execute(query).mappings()]


def instances_due_tx(conn: Connection, now: float, limit: int = 1000) -> list[InstanceRecord]:
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
    )
    return [_instance(r) for r in conn.execute(query).mappings()]


def all_instances_tx(conn: Connection) -> list[InstanceRecord]:
    query = select(service_instances).order_by(service_instances.c.service_instance_id)
    return [_instance(r) for r in conn.execute(query).mappings()]


def all_grants_tx(conn: Connection) -> list[Grant]:
    query = select(user_grants).order_by(user_grants.c.app_id, user_grants.c.mc_service_id)
    return [_grant(r) for r in conn.execute(query).mappings()]


def registered_instances_tx(conn: Connection, service_types: set[str]) -> list[InstanceRecord]:
    c = service_instances.c
    query = (
        select(service_instances)
        .where(c.status == "REGISTERED", func.lower(c.service_type).in_(sorted(service_types)))
        .order_by(c.service_instance_id)
    )
    return [_instance(r) for r in conn.execute(query).mappings()]


def heartbeat_tx(conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, str, int, tuple[str, str]]]:
    """Owner, status, period and pool of the instances among ``ids`` that exist."""
    c = service_instances.c
    query = select(
        c.service_instance_id, c.client_id, c.status, c.heartbeat_period, c.service_type, c.service_name
    )
    rows = conn.execute(query.where(c.service_instance_id.in_(list(ids))))
    return {row[0]: (row[1], row[2], row[3], (row[4], row[5])) for row in rows}


def set_liveness_tx(
    conn: Connection, instance_id: str, status: str, heartbeat: float, suspend_at: float, remove_at: float
) -> None:
    conn.execute(
        update(service_instances)
        .where(service_instances.c.service_instance_id == instance_id)
        .values(status=status, last_heartbeat=heartbeat, suspend_at=suspend_at, remove_at=remove_at)
    )


def reprieve_all_tx(conn: Connection, started_at: float, missed: int, grace: float) -> int:
    """After a (re)start, every instance gets ``missed`` heartbeat periods again (see lifecycle)."""
    c = service_instances.c
    fresh_suspend = started_at + c.heartbeat_period * missed
    changed = conn.execute(
        update(service_instances)
        .where(c.suspend_at < fresh_suspend)
        .values(suspend_at=fresh_suspend, remove_at=fresh_suspend + grace)
    )
    return int(changed.rowcount or 0)


# ---------------------------------------------------------------- apps, grants (in transactions)


def app_get_tx(conn: Connection, client_id: str) -> ExternalApp | None:
    row = conn.execute(select(external_apps).where(external_apps.c.client_id == client_id)).mappings().first()
    return _app(row) if row else None


def apps_of_tx(conn: Connection, client_ids: Sequence[str]) -> dict[str, ExternalApp]:
    found: dict[str, ExternalApp] = {}
    for start in range(0, len(client_ids), _IN_CHUNK):
        chunk = client_ids[start : start + _IN_CHUNK]
        for row in conn.execute(select(external_apps).where(external_apps.c.client_id.in_(chunk))).mappings():
            found[row["client_id"]] = _app(row)
    return found


def app_put_tx(conn: Connection, app: ExternalApp, *, new: bool) -> None:
    spec = ExternalAppSpec.model_validate(app.model_dump(include=set(ExternalAppSpec.model_fields)))
    values = {"spec": spec.dump_json().decode(), "version": app.version, "updated_at": app.updated_at}
    if new:
        conn.execute(
            insert(external_apps).values(client_id=app.client_id, created_at=app.created_at, **values)
        )
    else:
        conn.execute(update(external_apps).where(external_apps.c.client_id == app.client_id).values(**values))


def app_delete_tx(conn: Connection, client_id: str) -> None:
    conn.execute(delete(external_apps).where(external_apps.c.client_id == client_id))


def grant_get_tx(conn: Connection, app_id: str, mc_service_id: str) -> Grant | None:
    c = user_grants.c
    row = (
        conn.execute(select(user_grants).where(c.app_id == app_id, c.mc_service_id == mc_service_id))
        .mappings()
        .first()
    )
    return _grant(row) if row else None


def grant_put_tx(conn: Connection, grant: Grant, *, new: bool) -> None:
    services = json.dumps([s.dump() for s in grant.services]) if grant.services else None
    if new:
        conn.execute(
            insert(user_grants).values(
                app_id=grant.app_id,
                mc_service_id=grant.mc_service_id,
                services=services,
                version=grant.version,
                created_at=grant.created_at,
            )
        )
    else:
        c = user_grants.c
        conn.execute(
            update(user_grants)
            .where(c.app_id == grant.app_id, c.mc_service_id == grant.mc_service_id)
            .values(services=services, version=grant.version)
        )


def grant_delete_tx(conn: Connection, app_id: str, mc_service_id: str) -> None:
    c = user_grants.c
    conn.execute(delete(user_grants).where(c.app_id == app_id, c.mc_service_id == mc_service_id))


def grants_of_app_tx(conn: Connection, app_id: str) -> list[Grant]:
    rows = conn.execute(select(user_grants).where(user_grants.c.app_id == app_id)).mappings()
    return [_grant(r) for r in rows]


# ---------------------------------------------------------------- profiles (in transactions)


def profile_get_tx(conn: Connection, app_profile_id: str) -> ProfileRecord | None:
    row = (
        conn.execute(select(app_profiles).where(app_profiles.c.app_profile_id == app_profile_id))
        .mappings()
        .first()
    )
    return _profile(row) if row else None


def profiles_tx(
    conn: Connection, *, app_id: str | None = None, pool: tuple[str, str] | None = None
) -> list[ProfileRecord]:
    query = select(app_profiles).order_by(app_profiles.c.app_profile_index)
    if app_id is not None:
        query = query.where(app_profiles.c.app_id == app_id)
    if pool is not None:
        query = query.where(app_profiles.c.service_type == pool[0], app_profiles.c.service_name == pool[1])
    return [_profile(r) for r in conn.execute(query).mappings()]


def next_profile_index_tx(conn: Connection) -> int:
    highest = conn.execute(select(func.max(app_profiles.c.app_profile_index))).scalar()
    return int(highest or 0) + 1


def _profile_columns(record: ProfileRecord) -> dict[str, Any]:
    """What a profile version stores: the profile, and what it was built from (request and edit)."""
    profile = record.profile
    basis = {
        "requested": record.requested.dump() if record.requested else None,
        "edit": record.edit.dump() if record.edit else None,
    }
    return {
        "version": profile.version,
        "requested": json.dumps(basis),
        "profile": profile.dump_json().decode(),
        "updated_at": profile.updated_at,
    }


def profile_insert_tx(conn: Connection, record: ProfileRecord) -> None:
    """A new profile and its first version."""
    profile = record.profile
    values = _profile_columns(record)
    conn.execute(
        insert(app_profiles).values(
            app_profile_id=profile.app_profile_id,
            app_id=profile.app_id,
            service_type=profile.authorized_service,
            service_name=profile.service_name,
            app_profile_index=profile.app_profile_index,
            created_at=profile.updated_at,
            **values,
        )
    )
    conn.execute(
        insert(app_profile_versions).values(
            app_profile_id=profile.app_profile_id,
            version=profile.version,
            profile=values["profile"],
            created_at=profile.updated_at,
        )
    )


def profiles_update_many_tx(conn: Connection, records: Sequence[ProfileRecord]) -> None:
    """New versions of many existing profiles in two statements (a pool change touching thousands)."""
    if not records:
        return
    # executemany binds by name, and a SET column's own name is reserved: hence the b_ prefix.
    rows = [
        {"b_id": r.profile.app_profile_id, **{f"b_{k}": v for k, v in _profile_columns(r).items()}}
        for r in records
    ]
    columns = ("version", "requested", "profile", "updated_at")
    conn.execute(
        update(app_profiles)
        .where(app_profiles.c.app_profile_id == bindparam("b_id"))
        .values({name: bindparam(f"b_{name}") for name in columns}),
        rows,
    )
    conn.execute(
        insert(app_profile_versions),
        [
            {"app_profile_id": r["b_id"], "version": r["b_version"], "profile": r["b_profile"],
             "created_at": r["b_updated_at"]}
            for r in rows
        ],
    )  # fmt: skip


def profile_delete_tx(conn: Connection, app_profile_id: str) -> None:
    conn.execute(delete(app_profiles).where(app_profiles.c.app_profile_id == app_profile_id))


# ---------------------------------------------------------------- subscriptions, outbox, change log

_IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's and asyncpg's parameter limits


def subscriptions_of_tx(conn: Connection, app_ids: Sequence[str]) -> dict[str, Subscription]:
    found: dict[str, Subscription] = {}
    for start in range(0, len(app_ids), _IN_CHUNK):
        chunk = app_ids[start : start + _IN_CHUNK]
        for row in conn.execute(select(subscriptions).where(subscriptions.c.app_id.in_(chunk))).mappings():
            found[row["app_id"]] = Subscription(
                row["app_id"], row["notification_destination"], row["websocket"]
            )
    return found


def subscription_put_tx(conn: Connection, sub: Subscription, now: datetime) -> None:
    conn.execute(delete(subscriptions).where(subscriptions.c.app_id == sub.app_id))
    conn.execute(
        insert(subscriptions).values(
            app_id=sub.app_id,
            notification_destination=sub.notification_destination,
            websocket=sub.websocket,
            updated_at=now,
        )
    )


def subscription_delete_tx(conn: Connection, app_id: str) -> None:
    conn.execute(delete(subscriptions).where(subscriptions.c.app_id == app_id))


def notifications_enqueue_many_tx(
    conn: Connection, queued: Sequence[tuple[str, str, int, str]], now: float
) -> None:
    """Queue ``(app_id, app_profile_id, version, destination)`` notifications at once; undelivered older
    ones for the same profiles are superseded."""
    if not queued:
        return
    c = notifications.c
    profile_ids = [q[1] for q in queued]
    for start in range(0, len(profile_ids), _IN_CHUNK):
        chunk = profile_ids[start : start + _IN_CHUNK]
        conn.execute(
            update(notifications)
            .where(c.app_profile_id.in_(chunk), c.state == "PENDING")
            .values(state="SUPERSEDED", lease_until=None)
        )
    conn.execute(
        insert(notifications),
        [
            {
                "app_id": app_id,
                "app_profile_id": profile_id,
                "version": version,
                "destination": destination,
                "state": "PENDING",
                "attempts": 0,
                "next_attempt_at": now,
                "lease_until": None,
                "last_error": None,
                "created_at": _epoch_dt(now),
                "delivered_at": None,
            }
            for app_id, profile_id, version, destination in queued
        ],
    )


def changes_append_many_tx(
    conn: Connection, changes: Sequence[tuple[str, str, str, dict[str, Any] | None]], now: datetime
) -> None:
    """Many CSC-15 changes ``(kind, key, op, payload)``, numbered in the order given."""
    if changes:
        conn.execute(
            insert(change_log),
            [
                {"at": now, "kind": kind, "key": key[:512], "op": op,
                 "payload": json.dumps(payload) if payload is not None else None}
                for kind, key, op, payload in changes
            ],
        )  # fmt: skip


def change_append_tx(
    conn: Connection, kind: str, key: str, op: str, payload: dict[str, Any] | None, now: datetime
) -> None:
    """CSC-15: record a change every service access server must apply, with the next sequence number."""
    conn.execute(
        insert(change_log).values(
            at=now,
            kind=kind,
            key=key[:512],
            op=op,
            payload=json.dumps(payload) if payload is not None else None,
        )
    )


# ---------------------------------------------------------------- reads


@dataclass
class Change:
    seq: int
    at: datetime
    kind: str
    key: str
    op: str
    payload: dict[str, Any] | None


@dataclass
class Delivery:
    id: int
    app_id: str
    app_profile_id: str
    version: int
    destination: str
    state: str
    attempts: int
    next_attempt_at: float
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass
class TargetState:
    url: str
    acked_seq: int
    attempts: int
    next_attempt_at: float
    last_error: str | None
    last_success_at: datetime | None


class RegistryStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _rows(self, query: Any) -> list[RowMapping]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(query)).mappings().all())

    async def instance(self, instance_id: str) -> InstanceRecord | None:
        rows = await self._rows(
            select(service_instances).where(service_instances.c.service_instance_id == instance_id)
        )
        return _instance(rows[0]) if rows else None

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
        return [_instance(r) for r in await self._rows(query)]

    async def pools(self, pools: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[InstanceRecord]]:
        """The instances of many pools, one query per 250 pools (every pool asked for is a key)."""
        c = service_instances.c
        found: dict[tuple[str, str], list[InstanceRecord]] = {pool: [] for pool in pools}
        for start in range(0, len(pools), _IN_CHUNK // 2):
            chunk = pools[start : start + _IN_CHUNK // 2]
            query = select(service_instances).where(tuple_(c.service_type, c.service_name).in_(chunk))
            for row in await self._rows(query.order_by(c.service_instance_id)):
                record = _instance(row)
                found[record.pool].append(record)
        return found

    async def grant(self, app_id: str, mc_service_id: str) -> Grant | None:
        c = user_grants.c
        rows = await self._rows(
            select(user_grants).where(c.app_id == app_id, c.mc_service_id == mc_service_id)
        )
        return _grant(rows[0]) if rows else None

    async def app(self, client_id: str) -> ExternalApp | None:
        rows = await self._rows(select(external_apps).where(external_apps.c.client_id == client_id))
        return _app(rows[0]) if rows else None

    async def apps(self) -> list[ExternalApp]:
        return [_app(r) for r in await self._rows(select(external_apps).order_by(external_apps.c.client_id))]

    async def grants(self, *, app_id: str | None = None, mc_service_id: str | None = None) -> list[Grant]:
        c = user_grants.c
        query = select(user_grants).order_by(c.app_id, c.mc_service_id)
        if app_id is not None:
            query = query.where(c.app_id == app_id)
        if mc_service_id is not None:
            query = query.where(c.mc_service_id == mc_service_id)
        return [_grant(r) for r in await self._rows(query)]

    async def profile(self, app_profile_id: str) -> ProfileRecord | None:
        rows = await self._rows(select(app_profiles).where(app_profiles.c.app_profile_id == app_profile_id))
        return _profile(rows[0]) if rows else None

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
        return [_profile(r) for r in await self._rows(query)]

    async def subscription(self, app_id: str) -> Subscription | None:
        rows = await self._rows(select(subscriptions).where(subscriptions.c.app_id == app_id))
        return (
            Subscription(rows[0]["app_id"], rows[0]["notification_destination"], rows[0]["websocket"])
            if rows
            else None
        )

    async def changes(
        self, after: int, limit: int = 1000, kinds: Sequence[str] | None = None
    ) -> list[Change]:
        c = change_log.c
        query = select(change_log).where(c.seq > after).order_by(c.seq).limit(limit)
        if kinds is not None:
            query = query.where(c.kind.in_(list(kinds)))
        return [
            Change(
                r["seq"],
                r["at"],
                r["kind"],
                r["key"],
                r["op"],
                json.loads(r["payload"]) if r["payload"] else None,
            )
            for r in await self._rows(query)
        ]

    async def changed_keys(self, after: int, limit: int = 5000) -> list[tuple[int, str, str]]:
        """``(seq, kind, key)`` of the changes after ``after``: what changed, without the payloads (a
        pool change can log 10,000 profiles that a reader of keys need not decode)."""
        c = change_log.c
        query = select(c.seq, c.kind, c.key).where(c.seq > after).order_by(c.seq).limit(limit)
        return [(r["seq"], r["kind"], r["key"]) for r in await self._rows(query)]

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
        return [_delivery(r) for r in await self._rows(query)]

    async def targets(self) -> list[TargetState]:
        rows = await self._rows(select(sas_targets).order_by(sas_targets.c.url))
        return [
            TargetState(
                r["url"],
                r["acked_seq"],
                r["attempts"],
                r["next_attempt_at"],
                r["last_error"],
                r["last_success_at"],
            )
            for r in rows
        ]


def _delivery(r: RowMapping) -> Delivery:
    return Delivery(
        r["id"],
        r["app_id"],
        r["app_profile_id"],
        r["version"],
        r["destination"],
        r["state"],
        r["attempts"],
        r["next_attempt_at"],
        r["last_error"],
        r["created_at"],
        r["delivered_at"],
    )


# ---------------------------------------------------------------- delivery bookkeeping (in transactions)


def claim_due_tx(
    conn: Connection, now: float, lease: float, limit: int, websocket_apps: Sequence[str] | None
) -> list[Delivery]:
    """Lease the notifications due now (so another process does not send them too)."""
    c = notifications.c
    due = select(notifications).where(
        c.state == "PENDING", c.next_attempt_at <= now, or_(c.lease_until.is_(None), c.lease_until <= now)
    )
    if websocket_apps is not None:
        # WebSocket notifications are sent by the process that holds the application's socket.
        due = due.where(or_(c.destination != "websocket", c.app_id.in_(list(websocket_apps))))
    rows = [_delivery(r) for r in conn.execute(due.order_by(c.next_attempt_at).limit(limit)).mappings()]
    if rows:
        conn.execute(
            update(notifications).where(c.id.in_([r.id for r in rows])).values(lease_until=now + lease)
        )
    return rows


def delivered_many_tx(conn: Connection, delivery_ids: Sequence[int], now: float) -> None:
    """Mark acknowledged notifications (a superseded one stays superseded)."""
    c = notifications.c
    for start in range(0, len(delivery_ids), _IN_CHUNK):
        conn.execute(
            update(notifications)
            .where(c.id.in_(delivery_ids[start : start + _IN_CHUNK]), c.state == "PENDING")
            .values(state="DELIVERED", delivered_at=_epoch_dt(now), lease_until=None, attempts=c.attempts + 1)
        )


def failed_tx(conn: Connection, delivery_id: int, retry_at: float, error: str) -> None:
    c = notifications.c
    conn.execute(
        update(notifications)
        .where(c.id == delivery_id, c.state == "PENDING")
        .values(attempts=c.attempts + 1, next_attempt_at=retry_at, last_error=error[:1000], lease_until=None)
    )


def retry_now_tx(conn: Connection, delivery_id: int, now: float) -> bool:
    c = notifications.c
    result = conn.execute(
        update(notifications)
        .where(c.id == delivery_id, c.state == "PENDING")
        .values(next_attempt_at=now, lease_until=None)
    )
    return bool(result.rowcount)


def target_ensure_tx(conn: Connection, url: str, start_seq: int) -> None:
    if conn.execute(select(sas_targets.c.url).where(sas_targets.c.url == url)).first() is None:
        conn.execute(
            insert(sas_targets).values(url=url, acked_seq=start_seq, attempts=0, next_attempt_at=0.0)
        )


def target_acked_tx(conn: Connection, url: str, seq: int, now: datetime) -> None:
    conn.execute(
        update(sas_targets)
        .where(sas_targets.c.url == url, sas_targets.c.acked_seq < seq)
        .values(acked_seq=seq, attempts=0, next_attempt_at=0.0, last_error=None, last_success_at=now)
    )


def target_failed_tx(conn: Connection, url: str, retry_at: float, error: str) -> None:
    c = sas_targets.c
    conn.execute(
        update(sas_targets)
        .where(c.url == url)
        .values(attempts=c.attempts + 1, next_attempt_at=retry_at, last_error=error[:1000])
    )


def target_cursor_tx(conn: Connection, url: str, seq: int, note: str, now: datetime) -> None:
    """Move a cursor to where the access server says it is (forwards or backwards), with a note."""
    conn.execute(
        update(sas_targets)
        .where(sas_targets.c.url == url)
        .values(acked_seq=seq, attempts=0, next_attempt_at=0.0, last_error=note[:1000], last_success_at=now)
    )
