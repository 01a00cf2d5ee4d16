"""Seed 10.X.5 step 2 as a table: who may call what through the access server."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from asgate.access import priority as prio
from asgate.access.policy import Allowed, Caller, ProfileRule, Refused, decide
from asgate.domain.registry import AllowedService, ApplicationProfile


def profile(**overrides: Any) -> ApplicationProfile:
    body: dict[str, Any] = {
        "appProfileId": "p1",
        "appId": "console-1",
        "authorizedService": "GM",
        "serviceName": "gms",
        "appProfileIndex": 1,
        "serviceLocationInformation": "http://sas/1",
        "version": 1,
        "updatedAt": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
        "serviceInterfaceDescription": {
            "referencePoints": ["CSC-2"],
            "protocols": ["HTTP"],
            "maxPriority": "mcpttp.10",
            "versions": [
                {
                    "apiVersion": "v1",
                    "resources": [
                        {
                            "resourceName": "groups",
                            "uri": "/groups",
                            "commType": "REQUEST_RESPONSE",
                            "operations": ["GET", "POST"],
                        },
                        {
                            "resourceName": "group",
                            "uri": "/groups/{groupId}",
                            "commType": "REQUEST_RESPONSE",
                            "operations": ["GET"],
                        },
                    ],
                    "custOperations": [{"custOpName": "broadcast", "commType": "REQUEST_RESPONSE"}],
                }
            ],
        },
    }
    body.update(overrides)
    return ApplicationProfile.model_validate(body)


RULE = ProfileRule.of(profile())
ALICE = Caller("console-1", {"mcptt_id": "alice@mc.example"})
GRANTS: dict[tuple[str, str], list[AllowedService] | None] = {
    ("console-1", "alice@mc.example"): None,
    ("console-1", "bob@mc.example"): [AllowedService(service_type="GM", capabilities=["groups"])],
    ("console-1", "carol@mc.example"): [AllowedService(service_type="CM")],
}


@pytest.mark.parametrize(
    ("caller", "method", "path", "priority", "outcome"),
    [
        (ALICE, "GET", "/groups", None, "ok"),
        (ALICE, "GET", "/groups/", None, "ok"),
        (ALICE, "POST", "/groups", None, "ok"),
        (ALICE, "GET", "/groups/g1", None, "ok"),
        (ALICE, "POST", "/broadcast", None, "ok"),
        (ALICE, "DELETE", "/groups/g1", None, "OPERATION_NOT_AUTHORIZED"),
        (ALICE, "HEAD", "/groups", None, "ok"),  # RFC 9110 9.3.2: allowed wherever GET is
        (ALICE, "HEAD", "/groups/g1", None, "ok"),
        (ALICE, "HEAD", "/broadcast", None, "OPERATION_NOT_AUTHORIZED"),  # POST only
        (ALICE, "HEAD", "/admin", None, "RESOURCE_NOT_AUTHORIZED"),
        (
            Caller("console-1", {"mcptt_id": "bob@mc.example"}),
            "HEAD",
            "/groups/g1",
            None,
            "USER_NOT_AUTHORIZED",
        ),
        (ALICE, "GET", "/groups/g1/members", None, "RESOURCE_NOT_AUTHORIZED"),
        (ALICE, "GET", "/admin", None, "RESOURCE_NOT_AUTHORIZED"),
        (ALICE, "GET", "/groupsX", None, "RESOURCE_NOT_AUTHORIZED"),
        (ALICE, "GET", "/groups", "mcpttp.10", "ok"),
        (ALICE, "GET", "/groups", "mcpttq.15", "PRIORITY_NOT_AUTHORIZED"),
        (ALICE, "GET", "/groups", "mcpttq.9", "ok"),
        (ALICE, "GET", "/groups", "mcpttp.11", "PRIORITY_NOT_AUTHORIZED"),
        (Caller("console-1", {"mcptt_id": "bob@mc.example"}), "GET", "/groups", None, "ok"),
        (
            Caller("console-1", {"mcptt_id": "bob@mc.example"}),
            "GET",
            "/groups/g1",
            None,
            "USER_NOT_AUTHORIZED",
        ),
        (
            Caller("console-1", {"mcptt_id": "carol@mc.example"}),
            "GET",
            "/groups",
            None,
            "USER_NOT_AUTHORIZED",
        ),
        (
            Caller("console-1", {"mcptt_id": "mallory@mc.example"}),
            "GET",
            "/groups",
            None,
            "USER_NOT_AUTHORIZED",
        ),
        (
            Caller("console-1", {"mcdata_id": "mallory@x", "mcptt_id": "alice@mc.example"}),
            "GET",
            "/groups",
            None,
            "ok",
        ),
        (Caller("console-1", {}), "GET", "/groups", None, "MC_USER_REQUIRED"),
        (
            Caller("console-2", {"mcptt_id": "alice@mc.example"}),
            "GET",
            "/groups",
            None,
            "PROFILE_NOT_AUTHORIZED",
        ),
    ],
)
def test_decide(caller: Caller, method: str, path: str, priority: str | None, outcome: str) -> None:
    requested = prio.parse_value(priority) if priority else None
    decision = decide(caller, RULE, GRANTS, method, path, requested)
    if outcome == "ok":
        assert isinstance(decision, Allowed), decision
        assert decision.priority == requested
    else:
        assert isinstance(decision, Refused) and decision.cause == outcome, decision
        assert decision.status == 403


def test_an_unknown_index_is_refused_like_another_apps_index() -> None:
    unknown = decide(ALICE, None, GRANTS, "GET", "/groups", None)
    other = decide(
        Caller("console-2", {"mcptt_id": "alice@mc.example"}), RULE, GRANTS, "GET", "/groups", None
    )
    assert unknown == other


def test_the_id_that_fits_the_service_is_preferred() -> None:
    rule = ProfileRule.of(profile(authorizedService="MCData"))
    grants = {("console-1", "a-ptt"): None, ("console-1", "a-data"): None}
    decision = decide(
        Caller("console-1", {"mcptt_id": "a-ptt", "mcdata_id": "a-data"}),
        rule,
        grants,
        "GET",
        "/groups",
        None,
    )
    assert isinstance(decision, Allowed) and decision.user == "a-data"


def test_no_maximum_allows_no_priority() -> None:
    description = profile().service_interface_description.model_copy(update={"max_priority": None})
    rule = ProfileRule.of(profile().model_copy(update={"service_interface_description": description}))
    decision = decide(ALICE, rule, GRANTS, "GET", "/groups", prio.parse_value("mcpttq.0"))
    assert isinstance(decision, Refused) and decision.cause == "PRIORITY_NOT_AUTHORIZED"
