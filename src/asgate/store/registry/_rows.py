"""Row <-> record conversions shared by the registry's aggregates and its readers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import RowMapping

from asgate.domain.registry import (
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

IN_CHUNK = 500  # ids per IN (...) list: well under SQLite's and asyncpg's parameter limits


def epoch_dt(value: float) -> datetime:
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
            last_heartbeat_at=epoch_dt(self.last_heartbeat),
            suspend_at=epoch_dt(self.suspend_at),
            remove_at=epoch_dt(self.remove_at),
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
    holder: str | None = None  # the registry process pushing to it (issue 10), while lease_until
    lease_until: float | None = None


def instance(row: RowMapping) -> InstanceRecord:
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


def profile(row: RowMapping) -> ProfileRecord:
    basis = json.loads(row["requested"]) if row["requested"] else {}
    return ProfileRecord(
        profile=ApplicationProfile.model_validate_json(row["profile"]),
        requested=ServiceCapabilities.model_validate(basis["requested"]) if basis.get("requested") else None,
        edit=ProfileEdit.model_validate(basis["edit"]) if basis.get("edit") else None,
    )


def app(row: RowMapping) -> ExternalApp:
    return ExternalApp(
        **ExternalAppSpec.model_validate_json(row["spec"]).model_dump(),
        client_id=row["client_id"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def grant(row: RowMapping) -> Grant:
    services = json.loads(row["services"]) if row["services"] else None
    return Grant(
        app_id=row["app_id"],
        mc_service_id=row["mc_service_id"],
        services=[AllowedService.model_validate(s) for s in services] if services else None,
        version=row["version"],
        created_at=row["created_at"],
    )


def subscription(row: RowMapping) -> Subscription:
    return Subscription(row["app_id"], row["notification_destination"], row["websocket"])


def delivery(r: RowMapping) -> Delivery:
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


def change(r: RowMapping) -> Change:
    return Change(
        r["seq"], r["at"], r["kind"], r["key"], r["op"], json.loads(r["payload"]) if r["payload"] else None
    )


def target(r: RowMapping) -> TargetState:
    return TargetState(
        r["url"], r["acked_seq"], r["attempts"], r["next_attempt_at"], r["last_error"], r["last_success_at"],
        r["holder"], r["lease_until"],
    )  # fmt: skip
