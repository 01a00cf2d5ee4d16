"""The service registry's records: what the store persists and returns, and the registry serves.

Wire models (camelCase JSON, :mod:`asgate.kernel.wire`) that lie below the store, so that the store
depends on nothing above it (issue 10, docs/decisions.md "Records below the store"). Service
descriptions reuse TS 29.222 (CAPIF) shapes: ``InterfaceDescription``, ``Version``, ``Resource``,
``CustomOperation``. The requests and answers that are never stored stay in
:mod:`asgate.registry.models`.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from asgate.kernel.cors import MAX_ORIGINS, normalise_origin
from asgate.kernel.wire import DateTime, WireModel

ServiceType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,31}$")]
ServiceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
Priority = Annotated[str, StringConstraints(pattern=r"^(mcpttp|mcpttq)\.([0-9]|1[0-5])$")]
Operation = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Path = Annotated[str, StringConstraints(pattern=r"^/", max_length=512)]
# Interfaces the service access server can carry: HTTP and WebSocket (an HTTP upgrade).
PROXIED_PROTOCOLS = frozenset({"HTTP", "HTTPS", "WEBSOCKET", "WS", "WSS"})
# A browser application's origin, stored as a browser serializes it (asgate.kernel.cors).
Origin = Annotated[str, StringConstraints(max_length=300), AfterValidator(normalise_origin)]
Origins = Annotated[list[Origin], AfterValidator(lambda v: list(dict.fromkeys(v)))]  # once each


class InterfaceDescription(WireModel):
    """TS 29.222 InterfaceDescription + the MC reference point and protocol (one instance's interface)."""

    reference_point: str = Field(min_length=1, max_length=32)
    protocol: str = Field(min_length=1, max_length=32)
    ipv4_addr: str | None = None
    ipv6_addr: str | None = None
    fqdn: str | None = Field(default=None, min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    api_prefix: str | None = Field(default=None, pattern=r"^/", max_length=256)
    security_methods: list[Literal["PSK", "PKI", "OAUTH"]] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_address(self) -> Self:
        given = [a for a in (self.ipv4_addr, self.ipv6_addr, self.fqdn) if a is not None]
        if len(given) != 1:
            raise ValueError("exactly one of ipv4Addr, ipv6Addr, fqdn is required")
        if self.ipv4_addr is not None:
            ipaddress.IPv4Address(self.ipv4_addr)
        if self.ipv6_addr is not None:
            ipaddress.IPv6Address(self.ipv6_addr)
        return self

    @property
    def host(self) -> str:
        return self.ipv4_addr or self.ipv6_addr or self.fqdn or ""

    @property
    def proxied(self) -> bool:
        return self.protocol.upper() in PROXIED_PROTOCOLS

    def base_url(self) -> str:
        host = f"[{self.ipv6_addr}]" if self.ipv6_addr else self.host
        scheme = "https" if self.protocol.upper() in ("HTTPS", "WSS") else "http"
        return f"{scheme}://{host}:{self.port}{self.api_prefix or ''}"


class Resource(WireModel):
    """TS 29.222 Resource: a capability and the operations allowed on it."""

    resource_name: str = Field(min_length=1, max_length=128)
    comm_type: str
    uri: Path
    cust_op_name: str | None = None
    operations: list[Operation] | None = Field(default=None, min_length=1)
    description: str | None = None


class CustomOperation(WireModel):
    comm_type: str
    cust_op_name: str = Field(min_length=1, max_length=128)
    operations: list[Operation] | None = Field(default=None, min_length=1)
    description: str | None = None


class Version(WireModel):
    """TS 29.222 Version: one API version of a service with its capabilities."""

    api_version: str = Field(min_length=1, max_length=32)
    expiry: DateTime | None = None
    resources: list[Resource] | None = Field(default=None, min_length=1)
    cust_operations: list[CustomOperation] | None = Field(default=None, min_length=1)


class ServiceRegistration(WireModel):
    """``mcx-service-registration``: what an MC service instance registers (seed 5.2.8)."""

    service_type: ServiceType
    service_name: ServiceName
    interfaces: list[InterfaceDescription] = Field(min_length=1, max_length=16)
    versions: list[Version] | None = Field(default=None, min_length=1, max_length=16)
    environment: dict[str, Annotated[str, StringConstraints(max_length=256)]] | None = Field(
        default=None, max_length=32
    )
    heartbeat_period: int = Field(default=30, ge=1, le=3600)

    @property
    def pool(self) -> str:
        return f"{self.service_type}/{self.service_name}"

    def proxied_interface(self) -> InterfaceDescription | None:
        """The interface the service access server forwards to (the first HTTP/WebSocket one)."""
        return next((i for i in self.interfaces if i.proxied), None)


class ServiceInstance(ServiceRegistration):
    service_instance_id: str
    status: Literal["REGISTERED", "SUSPENDED"]
    client_id: str
    registered_at: datetime
    last_heartbeat_at: datetime
    suspend_at: datetime | None = None
    remove_at: datetime | None = None


class ServiceCapabilities(WireModel):
    """One entry of "services capabilities information" (Table 10.X.2.3-1)."""

    service_type: ServiceType
    service_name: ServiceName | None = None
    api_version: str | None = None
    capabilities: list[str] | None = Field(
        default=None, min_length=1, description="resource or custom operation names; all allowed if absent"
    )


class ServiceInterfaceDescription(WireModel):
    """Service interface description data (Table 10.X.1-1): what the application may call."""

    reference_points: list[str]
    protocols: list[str]
    versions: list[Version]
    max_priority: Priority | None = None
    rate_limits: RateLimits | None = None
    # The application's allowed origins (CORS at the access server); absent: none. An access
    # server that predates the field ignores it (TS 29.500 5.2.9) and answers no browser.
    allowed_origins: list[Origin] | None = Field(default=None, min_length=1, max_length=MAX_ORIGINS)


INT32_MAX = 2**31 - 1


class RateLimit(WireModel):
    # Bounded (common.yaml): a token bucket holds floats, and 10**400 is no float.
    rate: float = Field(gt=0, le=1e9)
    burst: int | None = Field(default=None, ge=1, le=10**9)


class RateLimits(WireModel):
    per_application: RateLimit | None = None
    per_user: RateLimit | None = None
    max_inflight: int | None = Field(default=None, ge=1, le=10**6)


class ApplicationProfile(WireModel):
    """Application profile (Table 10.X.1-1)."""

    app_profile_id: str
    app_id: str
    authorized_service: str
    service_name: str
    app_profile_index: int = Field(ge=1, le=INT32_MAX)  # an INTEGER column
    service_location_information: str
    service_endpoints: list[str] | None = None  # trusted-domain applications (seed Option 1)
    service_interface_description: ServiceInterfaceDescription
    version: int = Field(ge=1, le=INT32_MAX)
    updated_at: DateTime


class AllowedService(WireModel):
    service_type: ServiceType
    service_name: ServiceName | None = None
    capabilities: list[str] | None = Field(default=None, min_length=1)


class ExternalAppSpec(WireModel):
    """What the administrator decides about an external application (its OAuth2 client)."""

    display_name: str | None = Field(default=None, max_length=256)
    trust_domain: Literal["TRUSTED", "UNTRUSTED"] = "UNTRUSTED"
    allowed_services: list[AllowedService] = Field(default_factory=list, max_length=64)
    max_priority: Priority | None = None
    rate_limits: RateLimits | None = None
    default_notification_destination: str | None = Field(default=None, max_length=2048)
    # Origins of the browser applications of this client (scheme://host[:port], never "*").
    allowed_origins: Origins = Field(default_factory=list, max_length=MAX_ORIGINS)


class ExternalApp(ExternalAppSpec):
    client_id: str
    version: int
    created_at: datetime
    updated_at: datetime


class GrantSpec(WireModel):
    """The MC service provider authorizes an MC user for an external application (seed 5.2.8)."""

    app_id: str = Field(min_length=1, max_length=128)
    mc_service_id: str = Field(min_length=1, max_length=256)
    services: list[AllowedService] | None = Field(default=None, min_length=1, max_length=64)


class Grant(GrantSpec):
    version: int
    created_at: datetime


class ProfileEdit(WireModel):
    """An administrator's edit of one application profile (restrict or widen, priority, limits)."""

    versions: list[Version] | None = None
    max_priority: Priority | None = None
    rate_limits: RateLimits | None = None


ServiceInterfaceDescription.model_rebuild()
