"""Pool ownership (issue 8 item 1): which service client may serve which pools. Pure.

The administrator provisions the pools a service client may serve, as AS Service IDs are
provisioned for an AS (TS 23.554 8.2.5 pre-condition 2): ``TYPE/NAME`` patterns where either part may
be ``*`` (every value of that part, never more: ``GM/*`` is every pool of type GM, not ``GMX/a``).
Nothing is served by default. Service types match case-insensitively, as everywhere in the
registry; service names exactly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

POOL_NOT_PROVISIONED = "POOL_NOT_PROVISIONED"

_TYPE = re.compile(r"^(\*|[A-Za-z][A-Za-z0-9-]{0,31})$")  # models.ServiceType, or *
_NAME = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,62})$")  # models.ServiceName, or *


def parse_pattern(text: str) -> str:
    """``TYPE/NAME`` with ``*`` for a whole part; the pattern as stored. ValueError when malformed."""
    service_type, sep, service_name = text.strip().partition("/")
    if not sep or not _TYPE.fullmatch(service_type) or not _NAME.fullmatch(service_name):
        raise ValueError(
            f"{text!r}: a pool is TYPE/NAME (e.g. GM/gm-north), either part may be * (e.g. GM/*)"
        )
    return f"{service_type}/{service_name}"


def matches(pattern: str, service_type: str, service_name: str) -> bool:
    """Does one provisioned pattern cover the pool ``service_type/service_name``?"""
    want_type, sep, want_name = pattern.partition("/")
    if not sep or "/" in want_name or "/" in service_name:
        return False  # neither is possible (parse_pattern, models.ServiceName): grant nothing
    type_ok = want_type == "*" or want_type.lower() == service_type.lower()
    name_ok = want_name == "*" or want_name == service_name
    return type_ok and name_ok


def may_serve(patterns: Iterable[str], service_type: str, service_name: str) -> bool:
    """May a client provisioned with ``patterns`` register an instance of this pool?"""
    return any(matches(p, service_type, service_name) for p in patterns)
