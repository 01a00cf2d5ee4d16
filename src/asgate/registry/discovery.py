"""Get service information (seed 10.X.3 steps 1-2, Tables 10.X.2.1/2): which services an external
application may use for an MC user, matched against the query parameters list. Pure.

A service is a pool: the REGISTERED instances with one serviceType and serviceName. It is listed
when the administrator's policy for the application allows it, the MC user is granted it for this
application (seed 5.2.8), and it matches every query parameter given. Capabilities are narrowed to
what the policy and the grant allow. Backend addresses are included for trusted-domain applications
only (seed Option 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from asgate.domain.registry import AllowedService, ExternalAppSpec, ServiceRegistration
from asgate.registry import capabilities, interfaces
from asgate.registry.models import ServiceInformation


@dataclass(frozen=True)
class Query:
    service_type: str | None = None
    service_name: str | None = None
    reference_point: str | None = None
    protocol: str | None = None
    api_version: str | None = None
    capability: str | None = None
    environment: Mapping[str, str] = field(default_factory=dict)


def allowed_entry(
    entries: Iterable[AllowedService], service_type: str, service_name: str
) -> AllowedService | None:
    """The policy or grant entry covering a service; one naming the service beats a type-wide one."""
    best = None
    for entry in entries:
        if entry.service_type.lower() != service_type.lower():
            continue
        if entry.service_name == service_name:
            return entry
        if entry.service_name is None and best is None:
            best = entry
    return best


def permitted(
    app: ExternalAppSpec,
    grant: Sequence[AllowedService] | None,
    granted: bool,
    service_type: str,
    service_name: str,
) -> tuple[bool, capabilities.Caps, str | None]:
    """(allowed?, capabilities allowed, reason if not). ``grant`` None with ``granted``: every service
    the application may use."""
    policy = allowed_entry(app.allowed_services, service_type, service_name)
    if policy is None:
        return False, None, "SERVICE_NOT_ALLOWED"
    if not granted:
        return False, None, "USER_NOT_AUTHORIZED"
    if grant is None:
        return True, capabilities.of(policy), None
    user = allowed_entry(grant, service_type, service_name)
    if user is None:
        return False, None, "USER_NOT_AUTHORIZED"
    return True, capabilities.intersect(capabilities.of(policy), capabilities.of(user)), None


def _matches(instance: ServiceRegistration, query: Query) -> bool:
    if query.environment and any(
        (instance.environment or {}).get(k) != v for k, v in query.environment.items()
    ):
        return False
    if query.reference_point and not any(
        i.reference_point.lower() == query.reference_point.lower() for i in instance.interfaces
    ):
        return False
    if query.protocol and not any(i.protocol.lower() == query.protocol.lower() for i in instance.interfaces):
        return False
    if query.api_version and not any(v.api_version == query.api_version for v in instance.versions or ()):
        return False
    return not (query.capability and query.capability not in capabilities.names(instance.versions))


def describe(
    instances: Sequence[ServiceRegistration], caps: capabilities.Caps, *, trusted: bool
) -> ServiceInformation:
    """The service capabilities description of a pool (its matching instances)."""
    first = instances[0]
    environment = dict(first.environment or {})
    for other in instances[1:]:
        environment = {k: v for k, v in environment.items() if (other.environment or {}).get(k) == v}
    versions = capabilities.restrict(interfaces.union(i.versions for i in instances), caps)
    return ServiceInformation(
        service_type=first.service_type,
        service_name=first.service_name,
        reference_points=sorted({i.reference_point for inst in instances for i in inst.interfaces}),
        protocols=sorted({i.protocol for inst in instances for i in inst.interfaces}),
        versions=versions or None,
        environment=environment or None,
        available_instances=len(instances),
        interfaces=[i for inst in instances for i in inst.interfaces] if trusted else None,
    )


def get_service_information(
    pools: Iterable[tuple[tuple[str, str], Sequence[ServiceRegistration]]],
    app: ExternalAppSpec,
    grant: Sequence[AllowedService] | None,
    granted: bool,
    query: Query,
) -> list[ServiceInformation]:
    """``pools``: ((serviceType, serviceName), REGISTERED instances), in the order to list them (the
    view narrows them by type and name through its index, so a lookup does not scan every pool)."""
    found = []
    for (service_type, service_name), instances in pools:
        if query.service_type and service_type.lower() != query.service_type.lower():
            continue
        if query.service_name and service_name != query.service_name:
            continue
        ok, caps, _ = permitted(app, grant, granted, service_type, service_name)
        if not ok:
            continue
        if query.capability and caps is not None and query.capability not in caps:
            continue
        matching = [i for i in instances if _matches(i, query)]
        if matching:
            found.append(describe(matching, caps, trusted=app.trust_domain == "TRUSTED"))
    return found
