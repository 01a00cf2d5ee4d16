"""Approval of a pool's service interface description (issue 8 item 1). Pure.

What an instance registers (TS 29.222 ``Version``/``Resource``/``CustomOperation``) reaches
applications (discovery, authorization, application profiles, hence what the SAS lets through)
only as far as the administrator approved it for the pool:

- :func:`effective` is the part of an offered description that is approved: the resources and
  custom operations approved with the same URI, each with the operations (HTTP methods) both allow.
  Narrowing therefore applies at once; anything new waits.
- :func:`additions` says, one line each, what an offer adds to the approved description (a new API
  version, resource, URI or operation): the pending change the administrator approves or rejects.
- :func:`union` is what approving makes the approved description: every instance's offer together.

A pool with nothing approved yet (``None``) has an empty effective description: its first
description is pending like any widening (docs/decisions.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence

from asgate.domain.registry import CustomOperation, Resource, ServiceRegistration, Version

# One capability of one API version: (uri, custom operation) -> allowed methods (None: all).
_Key = tuple[str, str]  # ("resource" | "operation", name)
_Entry = tuple[str | None, str | None, frozenset[str] | None]


def _index(versions: Iterable[Version] | None) -> dict[str, dict[_Key, _Entry]]:
    index: dict[str, dict[_Key, _Entry]] = {}
    for version in versions or ():
        entries = index.setdefault(version.api_version, {})
        for r in version.resources or ():
            entries.setdefault(("resource", r.resource_name), (r.uri, r.cust_op_name, _ops(r.operations)))
        for o in version.cust_operations or ():
            entries.setdefault(("operation", o.cust_op_name), (None, None, _ops(o.operations)))
    return index


def _ops(operations: Sequence[str] | None) -> frozenset[str] | None:
    return frozenset(operations) if operations else None


def _allowed(offered: Sequence[str] | None, approved: frozenset[str] | None) -> list[str] | None:
    """The methods both allow, in the offer's order (None: every method); [] when none."""
    if approved is None:
        return list(offered) if offered else None
    if offered is None:
        return sorted(approved)
    return [op for op in offered if op in approved]


def effective(offered: Sequence[Version] | None, approved: Sequence[Version] | None) -> list[Version]:
    """The approved part of ``offered``."""
    index = _index(approved)
    out: list[Version] = []
    for version in offered or ():
        entries = index.get(version.api_version)
        if entries is None:
            continue
        resources: list[Resource] = []
        for r in version.resources or ():
            got = entries.get(("resource", r.resource_name))
            if got is None or got[:2] != (r.uri, r.cust_op_name):
                continue
            ops = _allowed(r.operations, got[2])
            if ops != []:
                resources.append(r.model_copy(update={"operations": ops}))
        operations: list[CustomOperation] = []
        for o in version.cust_operations or ():
            got = entries.get(("operation", o.cust_op_name))
            if got is None:
                continue
            ops = _allowed(o.operations, got[2])
            if ops != []:
                operations.append(o.model_copy(update={"operations": ops}))
        out.append(
            version.model_copy(update={"resources": resources or None, "cust_operations": operations or None})
        )
    return out


def effective_registration(
    registration: ServiceRegistration, approved: Sequence[Version] | None
) -> ServiceRegistration:
    """An instance's registration as applications may see it."""
    versions = effective(registration.versions, approved)
    return registration.model_copy(update={"versions": versions or None})


def additions(offered: Sequence[Version] | None, approved: Sequence[Version] | None) -> list[str]:
    """What ``offered`` adds to ``approved``, one readable line per addition (empty: nothing)."""
    index = _index(approved)
    found: list[str] = []
    for api_version, entries in _index(offered).items():
        known = index.get(api_version)
        if known is None:
            found.append(f"{api_version}: new API version")
            known = {}
        for (kind, name), (uri, cust_op, ops) in entries.items():
            got = known.get((kind, name))
            what = f"{api_version}: {kind} {name}"
            if got is None:
                where = f" {uri}" if uri else ""
                found.append(f"{what}{where} ({_text(ops)}): new")
            elif got[:2] != (uri, cust_op):
                found.append(f"{what}: now {uri} {cust_op or ''}".rstrip() + f" (approved: {got[0]})")
            elif got[2] is not None and (ops is None or not ops <= got[2]):
                extra = "every operation" if ops is None else ", ".join(sorted(ops - got[2]))
                found.append(f"{what}: adds {extra}")
    return found


def _text(ops: frozenset[str] | None) -> str:
    return "every operation" if ops is None else ", ".join(sorted(ops))


def union(offers: Iterable[Sequence[Version] | None]) -> list[Version]:
    """Several instances' descriptions as one: by API version, resources and custom operations by
    name (the first URI of a name wins), operations united."""
    merged: dict[str, tuple[Version, dict[str, Resource], dict[str, CustomOperation]]] = {}
    for versions in offers:
        for version in versions or ():
            _, resources, operations = merged.setdefault(version.api_version, (version, {}, {}))
            for r in version.resources or ():
                first = resources.setdefault(r.resource_name, r)
                if first is not r and (first.uri, first.cust_op_name) == (r.uri, r.cust_op_name):
                    resources[r.resource_name] = first.model_copy(
                        update={"operations": _either(first.operations, r.operations)}
                    )
            for o in version.cust_operations or ():
                first_op = operations.setdefault(o.cust_op_name, o)
                if first_op is not o:
                    operations[o.cust_op_name] = first_op.model_copy(
                        update={"operations": _either(first_op.operations, o.operations)}
                    )
    return [
        first.model_copy(
            update={
                "resources": list(resources.values()) or None,
                "cust_operations": list(operations.values()) or None,
            }
        )
        for first, resources, operations in merged.values()
    ]


def _either(a: Sequence[str] | None, b: Sequence[str] | None) -> list[str] | None:
    if a is None or b is None:
        return None
    return list(dict.fromkeys([*a, *b]))


def digest(versions: Sequence[Version] | None) -> str:
    """A short fingerprint of a description: what an approval or a rejection was about."""
    text = json.dumps([v.dump() for v in versions or ()], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]
