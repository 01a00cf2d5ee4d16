"""Update external application authorization (seed 10.X.3 step 4): grant or deny each requested
service by the administrator's policy for the application and the MC user's grant. Pure.

A REMOVE request withdraws the profiles :func:`removes` says it covers; it needs no grant.

Causes (in the response's ``failures``, or a 403 when nothing is granted):
``SERVICE_NOT_FOUND`` (no registered instance), ``SERVICE_NOT_ALLOWED`` (not in the application's
policy), ``USER_NOT_AUTHORIZED`` (the MC user is not granted it for this application),
``CAPABILITY_NOT_ALLOWED`` (a capability beyond what policy and grant allow),
``CAPABILITY_NOT_FOUND`` and ``VERSION_NOT_FOUND`` (the service does not offer it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from asgate.domain.registry import (
    AllowedService,
    ApplicationProfile,
    ExternalAppSpec,
    ServiceCapabilities,
    ServiceRegistration,
)
from asgate.kernel.problem import InvalidParam, ProblemError
from asgate.registry import capabilities
from asgate.registry.discovery import permitted
from asgate.registry.models import AuthorizationRequest


@dataclass(frozen=True)
class Granted:
    service_type: str
    service_name: str
    capabilities: capabilities.Caps  # what the profile allows; None: all the service offers
    api_version: str | None
    requested: ServiceCapabilities


@dataclass(frozen=True)
class Denied:
    service_type: str
    service_name: str | None
    cause: str
    detail: str


def _decide_pool(
    request: ServiceCapabilities,
    pool: tuple[str, str],
    instances: Sequence[ServiceRegistration],
    app: ExternalAppSpec,
    grant: Sequence[AllowedService] | None,
    granted: bool,
) -> Granted | Denied:
    service_type, service_name = pool
    ok, allowed, reason = permitted(app, grant, granted, service_type, service_name)
    if not ok:
        detail = {
            "SERVICE_NOT_ALLOWED": "the application's policy does not include this service",
            "USER_NOT_AUTHORIZED": "the MC user is not authorized for this service through this application",
        }[reason or ""]
        return Denied(service_type, service_name, reason or "SERVICE_NOT_ALLOWED", detail)
    versions = [v for inst in instances for v in inst.versions or ()]
    if request.api_version and not any(v.api_version == request.api_version for v in versions):
        return Denied(
            service_type, service_name, "VERSION_NOT_FOUND", f"no API version {request.api_version}"
        )
    offered = capabilities.names(versions)
    wanted = frozenset(request.capabilities) if request.capabilities else None
    if wanted is not None:
        missing = wanted - offered
        if missing:
            return Denied(
                service_type,
                service_name,
                "CAPABILITY_NOT_FOUND",
                f"not offered: {', '.join(sorted(missing))}",
            )
        beyond = wanted - allowed if allowed is not None else frozenset()
        if beyond:
            return Denied(
                service_type,
                service_name,
                "CAPABILITY_NOT_ALLOWED",
                f"not allowed: {', '.join(sorted(beyond))}",
            )
    return Granted(
        service_type, service_name, capabilities.intersect(allowed, wanted), request.api_version, request
    )


def decide(
    requests: Sequence[ServiceCapabilities],
    pools: Mapping[tuple[str, str], Sequence[ServiceRegistration]],
    app: ExternalAppSpec,
    grant: Sequence[AllowedService] | None,
    granted: bool,
) -> list[Granted | Denied]:
    """One decision per pool a request names (a request without serviceName covers every pool of its
    type that exists), or a ``SERVICE_NOT_FOUND`` denial when none does."""
    decisions: list[Granted | Denied] = []
    for request in requests:
        candidates = [
            key
            for key in sorted(pools)
            if key[0].lower() == request.service_type.lower()
            and (request.service_name is None or key[1] == request.service_name)
        ]
        if not candidates:
            name = (
                f"{request.service_type}/{request.service_name}"
                if request.service_name
                else request.service_type
            )
            decisions.append(
                Denied(
                    request.service_type, request.service_name, "SERVICE_NOT_FOUND", f"no registered {name}"
                )
            )
            continue
        outcomes = [_decide_pool(request, key, pools[key], app, grant, granted) for key in candidates]
        if request.service_name is None:
            decisions.extend(_type_wide(outcomes))
        else:
            decisions.extend(outcomes)
    return decisions


def _type_wide(outcomes: list[Granted | Denied]) -> list[Granted | Denied]:
    """A request for a service type is satisfied by the pools the application may use; pools outside
    its policy are not errors, unless the policy covers none of them (then one denial says so)."""
    granted = [o for o in outcomes if isinstance(o, Granted)]
    if granted:
        return list(granted)
    relevant = [o for o in outcomes if isinstance(o, Denied) and o.cause != "SERVICE_NOT_ALLOWED"]
    return list(relevant) or outcomes[:1]


def refusal(denied: Sequence[Denied]) -> ProblemError:
    """The 403 when nothing is granted: the first denial's cause, every denial as an invalid param."""
    first = denied[0]
    problems = [
        InvalidParam(param="/servicesCapabilitiesInformation", reason=f"{d.service_type}: {d.cause}")
        for d in denied
    ]
    return ProblemError(403, first.cause, first.detail, invalid_params=problems)


def removes(request: AuthorizationRequest, profile: ApplicationProfile) -> bool:
    """Whether a REMOVE ``request`` withdraws ``profile``: a service it names (a request without
    serviceName names every pool of its type), and, when it lists appProfileIds, one of them."""
    named = any(
        r.service_type.lower() == profile.authorized_service.lower()
        and (r.service_name is None or r.service_name == profile.service_name)
        for r in request.services_capabilities_information
    )
    ids = request.application_profile_information
    return named and (not ids or profile.app_profile_id in ids)
