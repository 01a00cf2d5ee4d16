"""Approval of a pool's interface description as pure functions (issue 8 item 1): what applications
may see of an offer, what an offer adds to the approved description, and approval's union."""

from __future__ import annotations

from typing import Any

import pytest

from asgate.domain.registry import Version
from asgate.registry.interfaces import additions, digest, effective, union


def v(
    api: str = "v1", *resources: tuple[str, str, list[str] | None], ops: dict[str, Any] | None = None
) -> Version:
    return Version.model_validate(
        {
            "apiVersion": api,
            **(
                {
                    "resources": [
                        {
                            "resourceName": n,
                            "uri": u,
                            "commType": "REQUEST_RESPONSE",
                            **({"operations": o} if o else {}),
                        }
                        for n, u, o in resources
                    ]
                }
                if resources
                else {}
            ),
            **(
                {
                    "custOperations": [
                        {"commType": "REQUEST_RESPONSE", "custOpName": k, **({"operations": o} if o else {})}
                        for k, o in ops.items()
                    ]
                }
                if ops
                else {}
            ),
        }
    )


GROUPS = ("groups", "/groups", ["GET"])
APPROVED = [v("v1", GROUPS, ops={"call": ["POST"]})]


def shape(versions: list[Version]) -> list[tuple[str, list[tuple[str, str, Any]], list[tuple[str, Any]]]]:
    return [
        (
            x.api_version,
            [(r.resource_name, r.uri, r.operations) for r in x.resources or ()],
            [(o.cust_op_name, o.operations) for o in x.cust_operations or ()],
        )
        for x in versions
    ]


@pytest.mark.parametrize(
    ("offered", "approved", "seen", "added"),
    [
        # the same as approved: all of it, nothing pending
        (
            [v("v1", GROUPS, ops={"call": ["POST"]})],
            APPROVED,
            [("v1", [("groups", "/groups", ["GET"])], [("call", ["POST"])])],
            [],
        ),
        # nothing approved yet: nothing seen, everything pending (a brand-new pool)
        ([v("v1", GROUPS)], None, [], ["v1: new API version", "v1: resource groups /groups (GET): new"]),
        # a new resource waits
        (
            [v("v1", GROUPS, ("users", "/users", ["GET"]))],
            APPROVED,
            [("v1", [("groups", "/groups", ["GET"])], [])],
            ["v1: resource users /users (GET): new"],
        ),
        # a new operation on an approved resource waits; the approved ones stay
        (
            [v("v1", ("groups", "/groups", ["GET", "DELETE"]))],
            APPROVED,
            [("v1", [("groups", "/groups", ["GET"])], [])],
            ["v1: resource groups: adds DELETE"],
        ),
        # "every operation" is wider than a list
        (
            [v("v1", ("groups", "/groups", None))],
            APPROVED,
            [("v1", [("groups", "/groups", ["GET"])], [])],
            ["v1: resource groups: adds every operation"],
        ),
        # the same name at another URI is another resource
        (
            [v("v1", ("groups", "/admin", ["GET"]))],
            APPROVED,
            [("v1", [], [])],
            ["v1: resource groups: now /admin (approved: /groups)"],
        ),
        # a new API version waits as a whole
        ([v("v2", GROUPS)], APPROVED, [], ["v2: new API version", "v2: resource groups /groups (GET): new"]),
        # a new custom operation, and a new method on an approved one
        (
            [v("v1", ops={"call": ["POST", "PUT"], "kill": ["POST"]})],
            APPROVED,
            [("v1", [], [("call", ["POST"])])],
            ["v1: operation call: adds PUT", "v1: operation kill (POST): new"],
        ),
        # narrowing applies at once and adds nothing
        (
            [v("v1", ("groups", "/groups", ["GET"]))],
            [v("v1", ("groups", "/groups", ["GET", "POST"]))],
            [("v1", [("groups", "/groups", ["GET"])], [])],
            [],
        ),
        ([], APPROVED, [], []),
    ],
)
def test_effective_and_additions(
    offered: list[Version], approved: list[Version] | None, seen: list[Any], added: list[str]
) -> None:
    assert shape(effective(offered, approved)) == seen
    assert additions(offered, approved) == added
    # what is seen never adds anything to what is approved
    assert additions(effective(offered, approved), approved) == []


def test_union_of_offers_covers_each_of_them() -> None:
    a = [v("v1", ("groups", "/groups", ["GET"]))]
    b = [v("v1", ("groups", "/groups", ["POST"]), ("users", "/users", None)), v("v2", GROUPS)]
    merged = union([a, b])
    assert shape(merged) == [
        ("v1", [("groups", "/groups", ["GET", "POST"]), ("users", "/users", None)], []),
        ("v2", [("groups", "/groups", ["GET"])], []),
    ]
    assert additions(a, merged) == [] and additions(b, merged) == []


def test_digest_names_an_offer() -> None:
    assert digest(APPROVED) == digest([v("v1", GROUPS, ops={"call": ["POST"]})])
    assert digest(APPROVED) != digest([v("v1", ("groups", "/groups", ["GET", "POST"]))])
    assert len(digest(None)) == 32
