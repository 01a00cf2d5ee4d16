"""Build application profiles (Table 10.X.1-1). Pure.

An application has one profile per service (pool) it is authorized for. Untrusted applications get
the service access server's address plus the profile index as service location information; trusted
ones (seed Option 1) get the instances' own endpoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from asgate.domain.registry import (
    ApplicationProfile,
    ExternalAppSpec,
    ProfileEdit,
    ServiceInterfaceDescription,
    ServiceRegistration,
)
from asgate.registry import capabilities, interfaces


def interface_description(
    instances: Sequence[ServiceRegistration],
    caps: capabilities.Caps,
    api_version: str | None,
    app: ExternalAppSpec,
    edit: ProfileEdit | None = None,
) -> ServiceInterfaceDescription:
    versions = capabilities.restrict(interfaces.union(i.versions for i in instances), caps, api_version)
    if edit is not None and edit.versions is not None:
        versions = edit.versions  # the administrator's own restriction of this profile
    return ServiceInterfaceDescription(
        reference_points=sorted({i.reference_point for inst in instances for i in inst.interfaces}),
        protocols=sorted({i.protocol for inst in instances for i in inst.interfaces}),
        versions=versions,
        max_priority=(edit.max_priority if edit and edit.max_priority else None) or app.max_priority,
        rate_limits=(edit.rate_limits if edit and edit.rate_limits else None) or app.rate_limits,
        allowed_origins=list(app.allowed_origins) or None,
    )


def build(
    *,
    app_profile_id: str,
    app_id: str,
    app: ExternalAppSpec,
    service_type: str,
    service_name: str,
    index: int,
    instances: Sequence[ServiceRegistration],
    caps: capabilities.Caps,
    api_version: str | None,
    sas_url: str,
    version: int,
    now: datetime,
    edit: ProfileEdit | None = None,
) -> ApplicationProfile:
    trusted = app.trust_domain == "TRUSTED"
    endpoints = sorted({i.base_url() for inst in instances for i in inst.interfaces if i.proxied})
    return ApplicationProfile(
        app_profile_id=app_profile_id,
        app_id=app_id,
        authorized_service=service_type,
        service_name=service_name,
        app_profile_index=index,
        service_location_information=(endpoints[0] if endpoints else "") if trusted else f"{sas_url}/{index}",
        service_endpoints=endpoints if trusted else None,
        service_interface_description=interface_description(instances, caps, api_version, app, edit),
        version=version,
        updated_at=now,
    )


def same(a: ApplicationProfile, b: ApplicationProfile) -> bool:
    """Equal but for version and time: a rebuild that changes nothing makes no new version."""
    ignore = {"version", "updated_at"}
    return a.model_dump(exclude=ignore) == b.model_dump(exclude=ignore)
