"""Seed 10.X.5 step 2, as pure functions: may this MC user, through this external application, make
this request? The application profile (the index must be one of the application's profiles, the
method and resource within its service interface description data, the priority within its
maximum) and the user's authorization for the application (seed 5.2.8: a grant for the service).

Everything is decided from plain data, ``now`` included; the gate does the I/O around it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from asgate.access import priority as prio
from asgate.access.ratelimit import Rate
from asgate.domain.registry import AllowedService, ApplicationProfile, Version
from asgate.kernel.claims import MC_ID_CLAIM, MC_ID_CLAIMS

_VARIABLE = re.compile(r"\{[^{}/]+\}")


@dataclass(frozen=True)
class Route:
    """One resource (or custom operation) of the profile: a path pattern and the methods allowed."""

    name: str
    pattern: re.Pattern[str]
    methods: frozenset[str] | None  # None: every method


def compile_routes(versions: Sequence[Version]) -> tuple[Route, ...]:
    """Resources become exact path patterns, ``{var}`` standing for one path segment."""
    routes = []
    for version in versions:
        for resource in version.resources or ():
            routes.append(_route(resource.resource_name, resource.uri, resource.operations))
        for operation in version.cust_operations or ():
            routes.append(
                _route(operation.cust_op_name, f"/{operation.cust_op_name}", operation.operations or ["POST"])
            )
    return tuple(routes)


def _route(name: str, uri: str, operations: Iterable[str] | None) -> Route:
    parts = _VARIABLE.split(uri)
    variables = _VARIABLE.findall(uri)
    regex = "".join(re.escape(part) + ("[^/]+" if i < len(variables) else "") for i, part in enumerate(parts))
    return Route(name, re.compile(regex.rstrip("/") + "/?"), _methods(operations))


def _methods(operations: Iterable[str] | None) -> frozenset[str] | None:
    """RFC 9110 9.3.2: HEAD is GET without the content, so it is allowed wherever GET is."""
    if not operations:
        return None
    methods = frozenset(operations)
    return methods | {"HEAD"} if "GET" in methods else methods


@dataclass(frozen=True)
class ProfileRule:
    """What the access server needs of one application profile, ready for the hot path."""

    app_profile_id: str
    app_id: str
    index: int
    pool: tuple[str, str]
    service_type: str
    routes: tuple[Route, ...]
    max_priority: prio.Priority | None
    app_rate: Rate | None = None
    user_rate: Rate | None = None
    max_inflight: int | None = None
    label: str = field(default="")
    # Serialized origins of the application's browser pages (asgate.kernel.cors), as a request sends them.
    origins: frozenset[bytes] = frozenset()

    @classmethod
    def of(cls, profile: ApplicationProfile) -> ProfileRule:
        description = profile.service_interface_description
        limits = description.rate_limits
        return cls(
            app_profile_id=profile.app_profile_id,
            app_id=profile.app_id,
            index=profile.app_profile_index,
            pool=(profile.authorized_service, profile.service_name),
            service_type=profile.authorized_service,
            routes=compile_routes(description.versions),
            max_priority=prio.parse_value(description.max_priority) if description.max_priority else None,
            app_rate=_rate(limits.per_application) if limits else None,
            user_rate=_rate(limits.per_user) if limits else None,
            max_inflight=limits.max_inflight if limits else None,
            label=f"{profile.authorized_service}/{profile.service_name}",
            origins=frozenset(o.encode() for o in description.allowed_origins or ()),
        )


def _rate(limit: object) -> Rate | None:
    if limit is None:
        return None
    rate = float(limit.rate)  # type: ignore[attr-defined]
    burst = limit.burst  # type: ignore[attr-defined]
    return Rate(rate, float(burst) if burst else max(1.0, rate))


@dataclass(frozen=True)
class Caller:
    """Who sends the request: the application (the token's client) and the MC user's IDs."""

    app_id: str
    mc_service_ids: Mapping[str, str]  # claim name -> MC service ID

    @classmethod
    def of(cls, client_id: str, claims: Mapping[str, object]) -> Caller:
        return cls(
            client_id,
            {c: str(claims[c]) for c in MC_ID_CLAIMS if isinstance(claims.get(c), str) and claims[c]},
        )


@dataclass(frozen=True)
class Allowed:
    rule: ProfileRule
    route: Route
    user: str  # the MC service ID the request is made as
    priority: prio.Priority | None


@dataclass(frozen=True)
class Refused:
    status: int
    cause: str
    detail: str


Grants = Mapping[tuple[str, str], Sequence[AllowedService] | None]


def decide(
    caller: Caller,
    rule: ProfileRule | None,
    grants: Grants,
    method: str,
    path: str,
    requested: prio.Priority | None,
) -> Allowed | Refused:
    """``path`` is the request path below ``/{index}`` (``/groups/g1``)."""
    if rule is None or rule.app_id != caller.app_id:
        # Another application's index is answered like an unknown one: indexes reveal nothing.
        return Refused(
            403, "PROFILE_NOT_AUTHORIZED", "no application profile with this index for this application"
        )
    if not caller.mc_service_ids:
        return Refused(
            403,
            "MC_USER_REQUIRED",
            "the token identifies no MC service user (mcptt_id, mcvideo_id, mcdata_id)",
        )
    user, entry = _granted_user(caller, rule, grants)
    if user is None:
        return Refused(
            403,
            "USER_NOT_AUTHORIZED",
            "the MC user is not authorized for this service through this application",
        )
    route = next((r for r in rule.routes if r.pattern.fullmatch(path)), None)
    if route is None:
        return Refused(403, "RESOURCE_NOT_AUTHORIZED", "the resource is not in the application profile")
    if route.methods is not None and method not in route.methods:
        return Refused(403, "OPERATION_NOT_AUTHORIZED", f"{method} is not allowed on {route.name}")
    if entry is not None and entry.capabilities is not None and route.name not in entry.capabilities:
        return Refused(403, "USER_NOT_AUTHORIZED", f"the MC user is not authorized for {route.name}")
    if requested is not None and not prio.within(requested, rule.max_priority):
        allowed = str(rule.max_priority) if rule.max_priority else "none"
        return Refused(
            403, "PRIORITY_NOT_AUTHORIZED", f"priority {requested} exceeds the profile's maximum ({allowed})"
        )
    return Allowed(rule, route, user, requested)


def _granted_user(
    caller: Caller, rule: ProfileRule, grants: Grants
) -> tuple[str | None, AllowedService | None]:
    """The MC service ID to act as, and its grant entry, trying the ID that fits the service first."""
    preferred = MC_ID_CLAIM.get(rule.service_type.lower())
    order = sorted(caller.mc_service_ids.items(), key=lambda item: item[0] != preferred)
    for _, user in order:
        key = (caller.app_id, user)
        if key not in grants:
            continue
        services = grants[key]
        if services is None:
            return user, None
        for entry in services:
            same_type = entry.service_type.lower() == rule.pool[0].lower()
            if same_type and entry.service_name in (None, rule.pool[1]):
                return user, entry
    return None, None
