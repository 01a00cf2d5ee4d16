"""Wire models of the service registry server's APIs (documents in ``openapi/``) that the store
never holds: requests, answers, lists. The records it stores and serves (services, applications,
grants, profiles) are :mod:`asgate.domain.registry`'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import Field

from asgate.domain.registry import (
    AllowedService,
    ApplicationProfile,
    ExternalApp,
    Grant,
    InterfaceDescription,
    ServiceCapabilities,
    Version,
)
from asgate.kernel.wire import WireModel

T = TypeVar("T")


class ServiceInformation(WireModel):
    """Service capabilities description of one service (Table 10.X.2.2-1), per pool."""

    service_type: str
    service_name: str
    reference_points: list[str]
    protocols: list[str]
    versions: list[Version] | None = None
    environment: dict[str, str] | None = None
    available_instances: int
    # Trusted-domain applications only (seed Option 1): where the instances are.
    interfaces: list[InterfaceDescription] | None = None


class ServiceInformationList(WireModel):
    service_information: list[ServiceInformation]


class AuthorizationRequest(WireModel):
    """Update external application authorization request (Table 10.X.2.3-1)."""

    mc_service_id: str = Field(min_length=1, max_length=256)
    request_type: Literal["AUTHORIZE", "REMOVE"]
    services_capabilities_information: list[ServiceCapabilities] = Field(min_length=1, max_length=32)
    application_profile_information: list[str] | None = Field(
        default=None, description="appProfileIds the request is about (REMOVE: withdraw exactly these)"
    )
    notification_destination: str | None = Field(default=None, max_length=2048)
    websocket_notification: bool | None = None


class ServiceFailure(WireModel):
    service_type: str
    service_name: str | None = None
    cause: str
    detail: str


class AuthorizationResponse(WireModel):
    """Update external application authorization response (Table 10.X.2.4-1)."""

    result: Literal["SUCCESS", "PARTIAL_SUCCESS"]
    application_profiles: list[ApplicationProfile]
    failures: list[ServiceFailure] | None = None
    websocket_uri: str | None = None


class ProfileNotification(WireModel):
    """Notify application profile request (Table 10.X.2.7-1): a pointer to the new profile."""

    app_profile_id: str
    app_profile_ref: str
    version: int
    notification_id: int | None = None


class GrantBody(WireModel):
    """Body of ``PUT /grants/{appId}/{mcServiceId}``: the services granted (absent: all the app may use)."""

    services: list[AllowedService] | None = Field(default=None, min_length=1, max_length=64)


class OutboxEntry(WireModel):
    id: int
    kind: Literal["notification", "csc15"]
    target: str
    destination: str
    state: str
    attempts: int
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    created_at: datetime
    delivered_at: datetime | None = None
    details: dict[str, Any] | None = None


class Page(WireModel, Generic[T]):
    items: list[T]
    next: str | None = None


class ExternalAppList(WireModel):
    items: list[ExternalApp]


class GrantList(WireModel):
    items: list[Grant]


class ProfileList(WireModel):
    items: list[ApplicationProfile]


class PoolInterfaceState(WireModel):
    """A pool's service interface description as the administrator approved it, and what its
    instances offer beyond that (issue 8 item 1: a widening waits for approval)."""

    service_type: str
    service_name: str
    state: Literal["APPROVED", "PENDING", "REJECTED"]
    approved_versions: list[Version] | None = None  # absent: nothing approved yet
    offered_versions: list[Version] | None = None  # every instance's description together
    additions: list[str] = Field(default_factory=list, description="what the offer adds, one per line")
    digest: str = Field(description="of the offer; If-Match of an approval")
    updated_by: str | None = None
    updated_at: datetime | None = None


class PoolInterfaceList(WireModel):
    items: list[PoolInterfaceState]


class PoolInterfaceBody(WireModel):
    """Body of ``PUT /pools/{serviceType}/{serviceName}/interface``: the description to approve."""

    versions: list[Version] = Field(max_length=16)


AuthorizationRequest.model_rebuild()
