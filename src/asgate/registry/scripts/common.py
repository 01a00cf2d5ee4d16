"""What every transaction script shares: CSC-15 kinds, ETags, refusals, the context, and the reads that
give the instances as applications may see them; the CSC-15 payloads of a pool and a grant."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from asgate.domain.registry import ExternalAppSpec, Grant, ServiceRegistration
from asgate.kernel.problem import Cause, InvalidParam, ProblemError
from asgate.registry import interfaces, pools
from asgate.registry.lifecycle import Liveness, State
from asgate.store import registry as db
from asgate.store.tx import Tx

CSC15_KINDS = ("service-pool", "app-profile", "user-authorization")


def etag(version: int) -> str:
    return f'"{version}"'


def etag_of(digest: str) -> str:
    return f'"{digest}"'


def check_if_match(if_match: str | None, version: int) -> None:
    """RFC 9110 13.1.1: a conditional update applies only to the version the client saw."""
    if (
        if_match is not None
        and if_match.strip() != "*"
        and etag(version) not in [t.strip() for t in if_match.split(",")]
    ):
        raise ProblemError(
            412, Cause.PRECONDITION_FAILED, f"the resource changed (now {etag(version)})",
            invalid_params=[InvalidParam(param="header If-Match", reason="does not match the current ETag")],
        )  # fmt: skip


def _not_found(what: str, key: str, param: str) -> ProblemError:
    return ProblemError(
        404,
        Cause.CONTEXT_NOT_FOUND,
        f"no {what} {key!r}",
        invalid_params=[InvalidParam(param=param, reason="not found")],
    )


@dataclass(frozen=True)
class Refusal:
    """A refusal whose audit events must be committed (a raised error would roll them back)."""

    error: ProblemError


class Beat:
    """The outcome of one heartbeat (:meth:`Scripts.heartbeats`)."""

    OK = "ok"
    UNKNOWN = "unknown"
    NOT_OWNED = "not-owned"
    POOL_NOT_PROVISIONED = pools.POOL_NOT_PROVISIONED


class Heartbeat(NamedTuple):
    """One heartbeat of a batch (:meth:`Scripts.heartbeats`)."""

    client_id: str
    instance_id: str
    now: float


@dataclass(frozen=True)
class Context:
    """What scripts need besides their arguments."""

    liveness: Liveness
    sas_url: str  # service location of untrusted applications' profiles
    api_root: str  # for appProfileRef in notifications


# ---------------------------------------------------------------- helpers


def _pool_of(registration: ServiceRegistration) -> tuple[str, str]:
    return registration.service_type, registration.service_name


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _registered(instances: Sequence[db.InstanceRecord]) -> list[ServiceRegistration]:
    return [i.registration for i in instances if i.status == State.REGISTERED]


def _effective_pools(
    tx: Tx, by_pool: Mapping[tuple[str, str], Sequence[db.InstanceRecord]]
) -> dict[tuple[str, str], list[db.InstanceRecord]]:
    """Issue 8 item 1: the instances as applications may see them, each description cut down to
    what the administrator approved for its pool (profiles, authorization decisions)."""
    approvals = tx.pools.interfaces(list(by_pool))
    out: dict[tuple[str, str], list[db.InstanceRecord]] = {}
    for pool, records in by_pool.items():
        approval = approvals.get(pool)
        approved = approval.approved if approval else None
        out[pool] = [
            dataclasses.replace(r, registration=interfaces.effective_registration(r.registration, approved))
            for r in records
        ]
    return out


def _effective_pool(tx: Tx, pool: tuple[str, str]) -> list[db.InstanceRecord]:
    return _effective_pools(tx, {pool: tx.instances.of_pool(pool)})[pool]


def _registered_pools(tx: Tx, service_types: set[str]) -> dict[tuple[str, str], list[db.InstanceRecord]]:
    pools: dict[tuple[str, str], list[db.InstanceRecord]] = defaultdict(list)
    for record in tx.instances.registered(service_types):
        pools[record.pool].append(record)
    return dict(pools)


def _caps_of(record: db.ProfileRecord, app: ExternalAppSpec) -> tuple[frozenset[str] | None, str | None]:
    from asgate.registry import capabilities
    from asgate.registry.discovery import allowed_entry

    requested = record.requested
    wanted = frozenset(requested.capabilities) if requested and requested.capabilities else None
    entry = allowed_entry(
        app.allowed_services, record.profile.authorized_service, record.profile.service_name
    )
    return capabilities.intersect(
        capabilities.of(entry), wanted
    ), requested.api_version if requested else None


def pool_payload(pool: tuple[str, str], instances: Sequence[db.InstanceRecord]) -> dict[str, Any]:
    """CSC-15 service-pool body: where the access server may forward (REGISTERED instances only)."""
    endpoints = []
    for record in instances:
        interface = record.registration.proxied_interface()
        if record.status != State.REGISTERED or interface is None:
            continue
        endpoints.append(
            {
                "serviceInstanceId": record.service_instance_id,
                "host": interface.host,
                "port": interface.port,
                "apiPrefix": interface.api_prefix or "",
                "protocol": interface.protocol,
            }
        )
    return {"serviceType": pool[0], "serviceName": pool[1], "instances": endpoints}


def grant_payload(grant: Grant) -> dict[str, Any]:
    return {
        "appId": grant.app_id,
        "mcServiceId": grant.mc_service_id,
        "services": [s.dump() for s in grant.services] if grant.services else None,
    }
