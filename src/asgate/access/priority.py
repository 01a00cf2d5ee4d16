"""Communication priority: the ``Resource-Priority`` header (RFC 4412) with the MCPTT namespaces.

RFC 8101 registers ``mcpttp`` (16 values, preemption) and ``mcpttq`` (16 values, queueing); the
values 0..15 run from lowest to highest. Pure functions: the gate parses what the client asked
for, holds it against the application profile's maximum and indicates the applied value back in
the response's own ``Resource-Priority`` (seed R-5.18.2-003).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

HEADER = b"resource-priority"
LEVELS = 16  # RFC 8101 3: 16 priority values per namespace


class Namespace(StrEnum):
    MCPTTP = "mcpttp"  # RFC 8101: preemption
    MCPTTQ = "mcpttq"  # RFC 8101: queueing


# RFC 4412 3.1: r-value = namespace "." r-priority; both are token-nodot.
_TOKEN_NODOT = re.compile(r"^[A-Za-z0-9\-!%*_+`'~]+$")


class PriorityError(ValueError):
    """A malformed Resource-Priority value; the message says what is wrong (answer 400)."""


@dataclass(frozen=True, slots=True)
class Priority:
    namespace: Namespace
    level: int

    @property
    def preemptive(self) -> bool:
        return self.namespace is Namespace.MCPTTP

    @property
    def rank(self) -> int:
        """Ordering key: 1..16 (0 is left for requests without any priority)."""
        return self.level + 1

    def __str__(self) -> str:
        return f"{self.namespace.value}.{self.level}"

    def header_value(self) -> bytes:
        """The applied value for the response's ``Resource-Priority`` field."""
        return str(self).encode("ascii")


def parse_value(text: str) -> Priority | None:
    """One r-value: a Priority, None for a namespace we do not know, PriorityError if malformed."""
    namespace, dot, value = text.strip().partition(".")
    if not dot or not _TOKEN_NODOT.match(namespace) or not _TOKEN_NODOT.match(value):
        raise PriorityError(f"{text.strip()[:40]!r} is not of the form namespace.priority")
    try:
        known = Namespace(namespace.lower())  # RFC 4412 3.1: namespaces are case-insensitive
    except ValueError:
        return None  # RFC 4412 4.6.2 (in spirit): an unknown namespace is ignored, not an error
    if not value.isdigit() or int(value) >= LEVELS:
        raise PriorityError(f"{known.value} takes a priority from 0 to {LEVELS - 1}, not {value[:20]!r}")
    return Priority(known, int(value))


def parse(fields: Iterable[bytes | str]) -> list[Priority]:
    """Every recognised r-value of the Resource-Priority field lines (RFC 9110 5.3: lines combine
    with commas; empty list elements are allowed, RFC 9110 5.6.1)."""
    found: dict[Namespace, Priority] = {}
    for field in fields:
        text = field.decode("latin-1") if isinstance(field, bytes) else field
        for element in text.split(","):
            if not element.strip():
                continue
            priority = parse_value(element)
            if priority is None:
                continue
            if priority.namespace in found:
                raise PriorityError(f"namespace {priority.namespace.value} appears more than once")
            found[priority.namespace] = priority
    return list(found.values())


def effective(priorities: Iterable[Priority]) -> Priority | None:
    """The r-value that governs the request: the highest level; preemption wins a tie."""
    return max(priorities, key=lambda p: (p.level, p.preemptive), default=None)


def from_headers(headers: Iterable[tuple[bytes, bytes]]) -> Priority | None:
    """The effective priority a request asks for, from its (lower-cased) header list."""
    return effective(parse(value for name, value in headers if name == HEADER))


def within(requested: Priority, maximum: Priority | None) -> bool:
    """Whether the profile's ``maximum`` allows ``requested``.

    Preemption is the stronger right: a maximum in ``mcpttq`` allows no ``mcpttp`` at all, while a
    maximum in ``mcpttp`` allows either namespace up to its level. No maximum allows nothing.
    """
    if maximum is None:
        return False
    if requested.preemptive and not maximum.preemptive:
        return False
    return requested.level <= maximum.level
