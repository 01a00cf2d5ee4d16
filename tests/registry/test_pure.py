"""The registry's decisions as pure, table-driven tests: lifecycle, discovery, policy, profiles."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from asgate.domain.registry import AllowedService, ExternalAppSpec, ServiceCapabilities, ServiceRegistration
from asgate.registry import capabilities, discovery, lifecycle, policy, profiles
from asgate.registry.lifecycle import Event, Liveness, State
from asgate.registry.models import AuthorizationRequest
from asgate.registry.sync import repair
from tests.registry.conftest import gm_registration


def reg(**overrides: Any) -> ServiceRegistration:
    return ServiceRegistration.model_validate(gm_registration(**overrides))


def app(*allowed: dict[str, Any], **kw: Any) -> ExternalAppSpec:
    return ExternalAppSpec.model_validate({"allowedServices": list(allowed), **kw})


@pytest.mark.parametrize(
    ("state", "event", "after"),
    [
        (State.REGISTERED, Event.HEARTBEAT, State.REGISTERED),
        (State.SUSPENDED, Event.HEARTBEAT, State.REGISTERED),
        (State.REGISTERED, Event.DEADLINE, State.SUSPENDED),
        (State.SUSPENDED, Event.DEADLINE, State.REMOVED),
        (State.REGISTERED, Event.DEREGISTER, State.REMOVED),
        (State.SUSPENDED, Event.DEREGISTER, State.REMOVED),
    ],
)
def test_transitions(state: State, event: Event, after: State) -> None:
    assert lifecycle.transition(state, event) is after


def test_removed_is_final() -> None:
    for event in Event:
        with pytest.raises(lifecycle.TransitionError):
            lifecycle.transition(State.REMOVED, event)


@pytest.mark.parametrize(
    ("state", "now", "expected"),
    [
        (State.REGISTERED, 129.9, None),
        (State.REGISTERED, 130.0, Event.DEADLINE),
        (State.SUSPENDED, 130.0, None),
        (State.SUSPENDED, 190.0, Event.DEADLINE),
    ],
)
def test_deadlines(state: State, now: float, expected: Event | None) -> None:
    suspend_at, remove_at = Liveness(missed_heartbeats=3, removal_grace=60).deadlines(100.0, 10)
    assert (suspend_at, remove_at) == (130.0, 190.0)
    assert lifecycle.due(state, now, suspend_at, remove_at) is expected


def test_a_restart_gives_every_instance_its_periods_again_but_never_less() -> None:
    live = Liveness(missed_heartbeats=3, removal_grace=60)
    assert live.reprieve(1000.0, 10, suspend_at=130.0, remove_at=190.0) == (1030.0, 1090.0)
    assert live.reprieve(1000.0, 10, suspend_at=5000.0, remove_at=5060.0) == (5000.0, 5060.0)


GM = {"serviceType": "GM"}
GM_GROUPS = {"serviceType": "GM", "capabilities": ["groups"]}


@pytest.mark.parametrize(
    ("policy_entries", "grant", "granted", "ok", "caps", "reason"),
    [
        ([GM], None, True, True, None, None),
        ([GM], None, False, False, None, "USER_NOT_AUTHORIZED"),
        ([], None, True, False, None, "SERVICE_NOT_ALLOWED"),
        ([{"serviceType": "GM", "serviceName": "other"}], None, True, False, None, "SERVICE_NOT_ALLOWED"),
        ([GM_GROUPS], None, True, True, frozenset({"groups"}), None),
        ([GM], [{"serviceType": "CM"}], True, False, None, "USER_NOT_AUTHORIZED"),
        ([GM], [GM_GROUPS], True, True, frozenset({"groups"}), None),
        (
            [{"serviceType": "gm"}],
            [{"serviceType": "GM", "serviceName": "gms", "capabilities": ["members"]}],
            True,
            True,
            frozenset({"members"}),
            None,
        ),
    ],
)
def test_permitted(
    policy_entries: list[dict[str, Any]],
    grant: list[dict[str, Any]] | None,
    granted: bool,
    ok: bool,
    caps: Any,
    reason: str | None,
) -> None:
    grant_entries = [AllowedService.model_validate(g) for g in grant] if grant is not None else None
    assert discovery.permitted(app(*policy_entries), grant_entries, granted, "GM", "gms") == (
        ok,
        caps,
        reason,
    )


def test_discovery_merges_a_pool_and_hides_addresses_from_untrusted_apps() -> None:
    pools = {("GM", "gms"): [reg(port=1), reg(port=2, environment={"region": "north", "zone": "a"})]}
    (info,) = discovery.get_service_information(pools.items(), app(GM), None, True, discovery.Query())
    assert (
        info.available_instances == 2 and info.environment == {"region": "north"} and info.interfaces is None
    )
    trusted = discovery.get_service_information(
        pools.items(), app(GM, trustDomain="TRUSTED"), None, True, discovery.Query()
    )
    assert [i.port for i in trusted[0].interfaces or []] == [1, 2]
    narrowed = discovery.get_service_information(pools.items(), app(GM_GROUPS), None, True, discovery.Query())
    assert capabilities.names(narrowed[0].versions) == {"groups"}
    assert (
        discovery.get_service_information(
            pools.items(), app(GM_GROUPS), None, True, discovery.Query(capability="members")
        )
        == []
    )


def test_discovery_describes_a_pool_as_one_service_whatever_the_order_of_its_instances() -> None:
    """The instances of a pool may each offer part of an approved description: discovery answers
    what the pool offers (the union the administrator approves, ``interfaces.union``), the same
    whichever instance registered first."""
    first = reg(port=1)
    versions = gm_registration()["versions"]
    versions[0]["resources"][0]["operations"] = ["GET", "DELETE"]
    second = reg(port=2, versions=versions)
    for order in ([first, second], [second, first]):
        (info,) = discovery.get_service_information(
            [(("GM", "gms"), order)], app(GM), None, True, discovery.Query()
        )
        groups = next(r for r in (info.versions or [])[0].resources or [] if r.resource_name == "groups")
        assert sorted(groups.operations or []) == ["DELETE", "GET", "POST"]


@pytest.mark.parametrize(
    ("requests", "expected"),
    [
        ([{"serviceType": "GM"}], [("Granted", "gms", None)]),
        ([{"serviceType": "GM", "capabilities": ["groups"]}], [("Granted", "gms", frozenset({"groups"}))]),
        ([{"serviceType": "GM", "capabilities": ["zzz"]}], [("Denied", "gms", "CAPABILITY_NOT_FOUND")]),
        ([{"serviceType": "GM", "apiVersion": "v2"}], [("Denied", "gms", "VERSION_NOT_FOUND")]),
        ([{"serviceType": "KM"}], [("Denied", None, "SERVICE_NOT_FOUND")]),
        ([{"serviceType": "GM", "serviceName": "gms-west"}], [("Denied", "gms-west", "SERVICE_NOT_ALLOWED")]),
        (
            [{"serviceType": "GM"}, {"serviceType": "CM"}],
            [("Granted", "gms", None), ("Denied", "cms", "SERVICE_NOT_ALLOWED")],
        ),
    ],
)
def test_authorization_decisions(
    requests: list[dict[str, Any]], expected: list[tuple[str, str | None, Any]]
) -> None:
    pools = {
        ("GM", "gms"): [reg()],
        ("GM", "gms-west"): [reg(name="gms-west")],
        ("CM", "cms"): [reg(name="cms", serviceType="CM")],
    }
    policy_app = app(
        {"serviceType": "GM", "serviceName": "gms"}, {"serviceType": "CM", "serviceName": "none"}
    )
    decisions = policy.decide(
        [ServiceCapabilities.model_validate(r) for r in requests], pools, policy_app, None, True
    )
    got = [
        (type(d).__name__, d.service_name, d.capabilities if isinstance(d, policy.Granted) else d.cause)
        for d in decisions
    ]
    assert got == expected


def test_a_type_wide_request_is_satisfied_by_the_pools_the_app_may_use() -> None:
    pools = {("GM", "gms"): [reg()], ("GM", "gms-west"): [reg(name="gms-west")]}
    decisions = policy.decide(
        [ServiceCapabilities(service_type="GM")],
        pools,
        app({"serviceType": "GM", "serviceName": "gms"}),
        None,
        True,
    )
    assert [(type(d).__name__, d.service_name) for d in decisions] == [("Granted", "gms")]


# what a REMOVE names (services, appProfileIds) -> whether it withdraws the GM/gms profile "p1"
REMOVES = [
    ([{"serviceType": "GM"}], None, True),
    ([{"serviceType": "gm"}], None, True),
    ([{"serviceType": "GM", "serviceName": "gms"}], None, True),
    ([{"serviceType": "GM", "serviceName": "GMS"}], None, False),  # names are case-sensitive
    ([{"serviceType": "GM", "serviceName": "west"}], None, False),
    ([{"serviceType": "CM"}, {"serviceType": "GM"}], None, True),
    ([{"serviceType": "CM"}], None, False),
    ([{"serviceType": "GM"}], ["p1"], True),
    ([{"serviceType": "GM"}], ["p2", "p1"], True),
    ([{"serviceType": "GM"}], ["p2"], False),
    ([{"serviceType": "CM"}], ["p1"], False),  # a listed profile of a service not named stays
]


@pytest.mark.parametrize(("services", "ids", "removed"), REMOVES)
def test_what_a_remove_request_withdraws(
    services: list[dict[str, Any]], ids: list[str] | None, removed: bool
) -> None:
    request = AuthorizationRequest.model_validate(
        {
            "mcServiceId": "alice",
            "requestType": "REMOVE",
            "servicesCapabilitiesInformation": services,
            **({"applicationProfileInformation": ids} if ids is not None else {}),
        }
    )
    profile = profiles.build(
        app_profile_id="p1", app_id="app-1", app=app({"serviceType": "GM"}), service_type="GM",
        service_name="gms", index=1, instances=[reg()], caps=None, api_version=None,
        sas_url="https://sas", version=1, now=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    assert policy.removes(request, profile) is removed


def test_a_refusal_names_the_first_cause_and_lists_every_denial() -> None:
    error = policy.refusal(
        [
            policy.Denied("CM", "cms", "SERVICE_NOT_ALLOWED", "not in the policy"),
            policy.Denied("KM", None, "SERVICE_NOT_FOUND", "no registered KM"),
        ]
    )
    assert (error.status, error.cause, error.detail) == (403, "SERVICE_NOT_ALLOWED", "not in the policy")
    assert [(p.param, p.reason) for p in error.invalid_params or ()] == [
        ("/servicesCapabilitiesInformation", "CM: SERVICE_NOT_ALLOWED"),
        ("/servicesCapabilitiesInformation", "KM: SERVICE_NOT_FOUND"),
    ]


def test_profiles_point_untrusted_apps_at_the_access_server_and_trusted_ones_at_the_service() -> None:
    kw: dict[str, Any] = dict(
        app_profile_id="p1", app_id="console-1", service_type="GM", service_name="gms", index=7,
        instances=[reg(port=9101), reg(port=9102)], caps=frozenset({"groups"}), api_version=None,
        sas_url="https://sas.example", version=1, now=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    untrusted = profiles.build(app=app(GM, maxPriority="mcpttp.9"), **kw)
    assert (
        untrusted.service_location_information == "https://sas.example/7"
        and untrusted.service_endpoints is None
    )
    assert untrusted.service_interface_description.max_priority == "mcpttp.9"
    assert capabilities.names(untrusted.service_interface_description.versions) == {"groups"}
    trusted = profiles.build(app=app(GM, trustDomain="TRUSTED"), **kw)
    assert trusted.service_endpoints == ["http://127.0.0.1:9101/gm", "http://127.0.0.1:9102/gm"]
    assert profiles.same(untrusted, untrusted.model_copy(update={"version": 5}))
    assert not profiles.same(untrusted, trusted)


@pytest.mark.parametrize(
    ("reported", "cursor", "issued", "action"),
    [
        (40, 40, True, "in-step"),
        (30, 40, True, "resume"),  # the SAS restarted from an older saved state: resend from 30
        (50, 40, True, "resume"),  # it got 41..50 another way (a snapshot, another registry process)
        (0, 40, True, "resume"),  # it lost everything
        (2**63 - 1, 40, False, "resync"),  # a forged jump: only the registry's snapshot repairs it
        (45, 40, False, "resync"),  # a number this registry never issued (not a CSC-15 change)
    ],
)
def test_a_diverging_access_server_is_repaired(reported: int, cursor: int, issued: bool, action: str) -> None:
    assert repair(reported, cursor, issued) == action
