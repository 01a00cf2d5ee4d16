"""Capabilities of a service (TS 29.222 ``Version``/``Resource``/``CustomOperation``), as sets.

A *capability* is a resource name or a custom operation name. Policies, grants and requests name
capabilities; ``None`` means "all of them".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from asgate.domain.registry import AllowedService, Version

Caps = frozenset[str] | None


def names(versions: Iterable[Version] | None) -> frozenset[str]:
    found: set[str] = set()
    for version in versions or ():
        for resource in version.resources or ():
            found.add(resource.resource_name)
            if resource.cust_op_name:
                found.add(resource.cust_op_name)
        for operation in version.cust_operations or ():
            found.add(operation.cust_op_name)
    return frozenset(found)


def intersect(*sets: Caps) -> Caps:
    """Intersection where ``None`` is "everything"."""
    result: Caps = None
    for caps in sets:
        if caps is None:
            continue
        result = caps if result is None else result & caps
    return result


def of(allowed: AllowedService | None) -> Caps:
    if allowed is None or allowed.capabilities is None:
        return None
    return frozenset(allowed.capabilities)


def restrict(versions: Sequence[Version], caps: Caps, api_version: str | None = None) -> list[Version]:
    """Only the versions (``api_version``) and capabilities (``caps``) given."""
    out = []
    for version in versions:
        if api_version is not None and version.api_version != api_version:
            continue
        if caps is None:
            out.append(version)
            continue
        resources = [
            r
            for r in version.resources or ()
            if r.resource_name in caps or (r.cust_op_name and r.cust_op_name in caps)
        ]
        operations = [o for o in version.cust_operations or () if o.cust_op_name in caps]
        if resources or operations:
            out.append(
                version.model_copy(
                    update={"resources": resources or None, "cust_operations": operations or None}
                )
            )
    return out
