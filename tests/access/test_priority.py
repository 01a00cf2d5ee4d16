"""Resource-Priority parsing and the profile maximum (RFC 4412 syntax, RFC 8101 namespaces)."""

from __future__ import annotations

import pytest

from asgate.access.priority import (
    Namespace,
    Priority,
    PriorityError,
    effective,
    from_headers,
    parse,
    parse_value,
    within,
)

P, Q = Namespace.MCPTTP, Namespace.MCPTTQ


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["mcpttp.9"], [Priority(P, 9)]),
        (["MCPTTQ.0"], [Priority(Q, 0)]),  # namespaces are case-insensitive
        (["mcpttp.15"], [Priority(P, 15)]),
        (["dsn.flash, mcpttq.4"], [Priority(Q, 4)]),  # unknown namespaces are ignored
        (["wps.3", "mcpttp.2"], [Priority(P, 2)]),  # several field lines combine
        (["mcpttp.1 , , mcpttq.7"], [Priority(P, 1), Priority(Q, 7)]),  # empty list elements
        (["ets.0"], []),
        ([], []),
        ([b"mcpttq.12"], [Priority(Q, 12)]),
    ],
)
def test_recognised_values(fields: list[str | bytes], expected: list[Priority]) -> None:
    assert parse(fields) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (["mcpttp"], "namespace.priority"),
        (["mcpttp."], "namespace.priority"),
        ([".5"], "namespace.priority"),
        (["mcpttp.16"], "from 0 to 15"),
        (["mcpttp.-1"], "from 0 to 15"),
        (["mcpttq.high"], "from 0 to 15"),
        (["mcpttp.1.2"], "namespace.priority"),
        (["mcpttp.1", "mcpttp.2"], "more than once"),
        (["mc ptt.1"], "namespace.priority"),
    ],
)
def test_malformed_values_are_errors_that_say_why(fields: list[str], message: str) -> None:
    with pytest.raises(PriorityError, match=message):
        parse(fields)


def test_the_highest_value_governs_and_preemption_wins_a_tie() -> None:
    assert effective([Priority(Q, 3), Priority(P, 2)]) == Priority(Q, 3)
    assert effective([Priority(Q, 5), Priority(P, 5)]) == Priority(P, 5)
    assert effective([]) is None


def test_from_headers_reads_every_resource_priority_line() -> None:
    headers = [(b"host", b"x"), (b"resource-priority", b"mcpttq.2"), (b"resource-priority", b"mcpttp.7")]
    assert from_headers(headers) == Priority(P, 7)
    assert from_headers([(b"host", b"x")]) is None


@pytest.mark.parametrize(
    ("requested", "maximum", "allowed"),
    [
        ("mcpttp.9", "mcpttp.10", True),
        ("mcpttp.10", "mcpttp.10", True),
        ("mcpttp.12", "mcpttp.10", False),
        ("mcpttq.12", "mcpttp.10", False),
        ("mcpttq.3", "mcpttp.10", True),  # preemption includes queueing
        ("mcpttp.3", "mcpttq.10", False),  # queueing does not include preemption
        ("mcpttq.11", "mcpttq.10", False),
        ("mcpttp.0", None, False),  # no maximum in the profile: no priority at all
    ],
)
def test_the_profile_maximum(requested: str, maximum: str | None, allowed: bool) -> None:
    asked = parse_value(requested)
    assert asked is not None
    ceiling = parse_value(maximum) if maximum else None
    assert within(asked, ceiling) is allowed


def test_the_applied_value_is_formatted_for_the_response_header() -> None:
    assert Priority(P, 9).header_value() == b"mcpttp.9"
    assert str(Priority(Q, 0)) == "mcpttq.0"
    assert Priority(P, 0).rank == 1 and Priority(Q, 15).rank == 16
