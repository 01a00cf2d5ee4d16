"""The CSC-14 authorization decision (seed 10.X.3 steps 4-6, ``Scripts.authorize``) as tables over a
fake ``tx`` (issue 10): who is authorized for what, and what the decision leaves behind (profiles,
the subscription, CSC-15 changes, audit events), without a database.

The pure rules it applies (``policy.decide``, ``policy.removes``) are tested in test_pure.py; the
store aggregates it writes through, in tests/store/; the HTTP API, in test_csc14_api.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from asgate.domain.registry import AllowedService, ExternalApp, Grant, ServiceRegistration, Version
from asgate.kernel.problem import ProblemError
from asgate.registry.lifecycle import Liveness
from asgate.registry.models import AuthorizationRequest, AuthorizationResponse
from asgate.registry.scripts import Context, Refusal, Scripts
from asgate.store.pools import PoolInterface
from asgate.store.registry import InstanceRecord, ProfileRecord, Subscription
from asgate.store.tx import Tx

from .conftest import gm_registration

NOW = 1_000_000.0
AT = datetime.fromtimestamp(NOW, UTC)
APP = "app-1"
USER = "alice@mc.example"
CALLBACK = "https://app.example/cb"


# ---------------------------------------------------------------- the fake tx


@dataclass
class FakeApps:
    rows: dict[str, ExternalApp] = field(default_factory=dict)

    def get(self, client_id: str) -> ExternalApp | None:
        return self.rows.get(client_id)

    def delete(self, client_id: str) -> None:
        del self.rows[client_id]


@dataclass
class FakeGrants:
    rows: dict[tuple[str, str], Grant] = field(default_factory=dict)

    def get(self, app_id: str, mc_service_id: str) -> Grant | None:
        return self.rows.get((app_id, mc_service_id))

    def of_app(self, app_id: str) -> list[Grant]:
        return [g for (a, _), g in sorted(self.rows.items()) if a == app_id]

    def delete(self, app_id: str, mc_service_id: str) -> None:
        del self.rows[(app_id, mc_service_id)]


@dataclass
class FakeInstances:
    rows: dict[str, InstanceRecord] = field(default_factory=dict)

    def registered(self, service_types: set[str]) -> list[InstanceRecord]:
        return [
            r
            for _, r in sorted(self.rows.items())
            if r.status == "REGISTERED" and r.registration.service_type.lower() in service_types
        ]


@dataclass
class FakePools:
    approved: dict[tuple[str, str], list[Version]] = field(default_factory=dict)

    def interfaces(self, pools: list[tuple[str, str]]) -> dict[tuple[str, str], PoolInterface]:
        return {
            p: PoolInterface(p, self.approved[p], None, 1, "ops", AT) for p in pools if p in self.approved
        }


@dataclass
class FakeProfiles:
    rows: dict[str, ProfileRecord] = field(default_factory=dict)

    def find(self, *, app_id: str | None = None, pool: tuple[str, str] | None = None) -> list[ProfileRecord]:
        found = [
            r
            for r in self.rows.values()
            if (app_id is None or r.profile.app_id == app_id) and (pool is None or r.pool == pool)
        ]
        return sorted(found, key=lambda r: r.profile.app_profile_index)

    def get(self, app_profile_id: str) -> ProfileRecord | None:
        return self.rows.get(app_profile_id)

    def next_index(self) -> int:
        return max((r.profile.app_profile_index for r in self.rows.values()), default=0) + 1

    def insert(self, record: ProfileRecord) -> None:
        assert not self.find(app_id=record.profile.app_id, pool=record.pool), "one per application and pool"
        self.rows[record.profile.app_profile_id] = record

    def update_many(self, records: list[ProfileRecord]) -> None:
        for record in records:
            assert record.profile.app_profile_id in self.rows
            self.rows[record.profile.app_profile_id] = record

    def delete(self, app_profile_id: str) -> None:
        del self.rows[app_profile_id]


@dataclass
class FakeSubscriptions:
    rows: dict[str, Subscription] = field(default_factory=dict)

    def put(self, sub: Subscription, now: datetime) -> None:
        self.rows[sub.app_id] = sub

    def delete(self, app_id: str) -> None:
        self.rows.pop(app_id, None)

    def many(self, app_ids: list[str]) -> dict[str, Subscription]:
        return {a: self.rows[a] for a in app_ids if a in self.rows}


@dataclass
class FakeChanges:
    log: list[tuple[str, str, str]] = field(default_factory=list)

    def append(self, kind: str, key: str, op: str, payload: Any, now: datetime) -> None:
        self.log.append((kind, key, op))

    def append_many(self, changes: list[tuple[str, str, str, Any]], now: datetime) -> None:
        self.log += [(kind, key, op) for kind, key, op, _ in changes]


@dataclass
class FakeOutbox:
    queued: list[tuple[str, str, int, str]] = field(default_factory=list)

    def enqueue_many(self, queued: list[tuple[str, str, int, str]], now: float) -> None:
        self.queued += queued


@dataclass
class FakeAudit:
    events: list[tuple[str, str, str, str, str | None]] = field(default_factory=list)

    def append(
        self,
        actor: str,
        action: str,
        resource: str,
        outcome: str = "ok",
        *,
        reason: str | None = None,
        **_: Any,
    ) -> None:
        self.events.append((actor, action, resource, outcome, reason))


@dataclass
class FakeTx:
    apps: FakeApps = field(default_factory=FakeApps)
    grants: FakeGrants = field(default_factory=FakeGrants)
    instances: FakeInstances = field(default_factory=FakeInstances)
    pools: FakePools = field(default_factory=FakePools)
    profiles: FakeProfiles = field(default_factory=FakeProfiles)
    subscriptions: FakeSubscriptions = field(default_factory=FakeSubscriptions)
    changes: FakeChanges = field(default_factory=FakeChanges)
    outbox: FakeOutbox = field(default_factory=FakeOutbox)
    audit: FakeAudit = field(default_factory=FakeAudit)

    @property
    def tx(self) -> Tx:
        return cast(Tx, self)

    def written(self) -> tuple[object, ...]:
        """Everything the decision may have written."""
        return (
            self.profiles.rows,
            self.subscriptions.rows,
            self.changes.log,
            self.outbox.queued,
            self.audit.events,
        )


# ---------------------------------------------------------------- the world


GM_VERSIONS = [Version.model_validate(v) for v in gm_registration()["versions"]]


def world(
    *,
    allowed: list[dict[str, Any]] | None = None,
    grant: list[dict[str, Any]] | None | bool = True,
    instances: tuple[tuple[str, str, str], ...] = (("GM", "gms", "REGISTERED"),),
    approved: tuple[str, ...] = ("GM/gms", "GM/west", "CM/cms"),
) -> FakeTx:
    """The application (``allowed``: its policy; None: not registered), the user's grant (True: every
    service the application may use; a list: those; False: none), the instances and the approvals."""
    fake = FakeTx()
    if allowed is not None:
        fake.apps.rows[APP] = ExternalApp.model_validate(
            {
                "clientId": APP,
                "allowedServices": allowed,
                "version": 1,
                "createdAt": AT.isoformat(),
                "updatedAt": AT.isoformat(),
            }
        )
    if grant is not False:
        services = None if grant is True else [AllowedService.model_validate(s) for s in grant or ()]
        fake.grants.rows[(APP, USER)] = Grant(
            app_id=APP, mc_service_id=USER, services=services, version=1, created_at=AT
        )
    for n, (service_type, name, status) in enumerate(instances):
        registration = ServiceRegistration.model_validate(
            gm_registration(name=name, serviceType=service_type)
        )
        fake.instances.rows[f"i{n}"] = InstanceRecord(
            f"i{n}", "gms-1", registration, status, AT, NOW, NOW + 30, NOW + 90, 1
        )
    for pool in approved:
        service_type, _, name = pool.partition("/")
        fake.pools.approved[(service_type, name)] = GM_VERSIONS
    return fake


def authorize_request(*services: dict[str, Any], kind: str = "AUTHORIZE", **kw: Any) -> AuthorizationRequest:
    return AuthorizationRequest.model_validate(
        {
            "mcServiceId": USER,
            "requestType": kind,
            "servicesCapabilitiesInformation": list(services) or [{"serviceType": "GM"}],
            **kw,
        }
    )


def _scripts() -> Scripts:
    return Scripts(Context(liveness=Liveness(3, 60.0), sas_url="https://sas", api_root="https://registry"))


def authorize(fake: FakeTx, request: AuthorizationRequest, destination: str | None = CALLBACK) -> Any:
    return _scripts().authorize(fake.tx, app_id=APP, request=request, destination=destination, now=NOW)


# ---------------------------------------------------------------- AUTHORIZE

GM = {"serviceType": "GM"}
GM_GMS = {"serviceType": "GM", "serviceName": "gms"}
CM = {"serviceType": "CM"}
BOTH = (("GM", "gms", "REGISTERED"), ("CM", "cms", "REGISTERED"))

# the world, what is asked -> the result (or the refusal's cause), the pools profiled, the failures
AUTHORIZE = [
    pytest.param(
        {"allowed": [GM]}, [GM], "SUCCESS", ["GM/gms"], [], id="allowed and granted"),
    pytest.param(
        {"allowed": [GM], "grant": [GM_GMS]}, [GM], "SUCCESS", ["GM/gms"], [], id="granted that pool"),
    pytest.param(
        {"allowed": [GM, CM], "instances": BOTH}, [GM, CM], "SUCCESS", ["GM/gms", "CM/cms"], [],
        id="two services"),
    pytest.param(
        {"allowed": [GM], "grant": False}, [GM], "USER_NOT_AUTHORIZED", [], [], id="no grant for the user"),
    pytest.param(
        {"allowed": [GM], "grant": [CM]}, [GM], "USER_NOT_AUTHORIZED", [], [],
        id="the grant names another service"),
    pytest.param(
        {"allowed": [CM]}, [GM_GMS], "SERVICE_NOT_ALLOWED", [], [], id="outside the application's policy"),
    pytest.param(
        {"allowed": [GM]}, [{"serviceType": "KM"}], "SERVICE_NOT_FOUND", [], [], id="no such service"),
    pytest.param(
        {"allowed": [GM], "instances": (("GM", "gms", "SUSPENDED"),)}, [GM], "SERVICE_NOT_FOUND", [], [],
        id="only a suspended instance"),
    pytest.param(
        {"allowed": [GM], "approved": ()}, [{**GM, "apiVersion": "v1"}], "VERSION_NOT_FOUND", [], [],
        id="the pool's description not approved yet"),
    pytest.param(
        {"allowed": [{**GM, "capabilities": ["groups"]}]}, [{**GM, "capabilities": ["members"]}],
        "CAPABILITY_NOT_ALLOWED", [], [], id="a capability beyond the policy"),
    pytest.param(
        {"allowed": [GM], "grant": [{**GM, "capabilities": ["groups"]}]},
        [{**GM, "capabilities": ["members"]}], "CAPABILITY_NOT_ALLOWED", [], [],
        id="a capability beyond the grant"),
    pytest.param(
        {"allowed": [GM]}, [{**GM, "capabilities": ["zzz"]}], "CAPABILITY_NOT_FOUND", [], [],
        id="a capability no instance offers"),
    pytest.param(
        {"allowed": [GM], "instances": BOTH}, [GM, CM], "PARTIAL_SUCCESS", ["GM/gms"],
        [("CM", "SERVICE_NOT_ALLOWED")], id="one of two outside the policy"),
    pytest.param(
        {"allowed": [GM, CM], "grant": [GM], "instances": BOTH}, [GM, CM], "PARTIAL_SUCCESS", ["GM/gms"],
        [("CM", "USER_NOT_AUTHORIZED")], id="one of two not granted"),
    pytest.param(
        {"allowed": [GM]}, [GM, {"serviceType": "KM"}], "PARTIAL_SUCCESS", ["GM/gms"],
        [("KM", "SERVICE_NOT_FOUND")], id="one of two not found"),
]  # fmt: skip


@pytest.mark.parametrize(("setup", "services", "outcome", "profiled", "failures"), AUTHORIZE)
def test_authorize_decides_per_service_and_writes_only_what_it_grants(
    setup: dict[str, Any],
    services: list[dict[str, Any]],
    outcome: str,
    profiled: list[str],
    failures: list[tuple[str, str]],
) -> None:
    fake = world(**setup)

    result = authorize(fake, authorize_request(*services))

    decided = [(e[1], e[3]) for e in fake.audit.events if e[1] == "authorization.decide"]
    if outcome in ("SUCCESS", "PARTIAL_SUCCESS"):
        assert isinstance(result, AuthorizationResponse)
        assert result.result == outcome
        got = [f"{p.authorized_service}/{p.service_name}" for p in result.application_profiles]
        assert got == profiled
        assert [(f.service_type, f.cause) for f in result.failures or ()] == failures
        stored = sorted(
            f"{r.profile.authorized_service}/{r.profile.service_name}" for r in fake.profiles.rows.values()
        )
        assert stored == sorted(profiled)
        assert [(p.app_profile_index, p.version) for p in result.application_profiles] == [
            (n, 1) for n in range(1, len(profiled) + 1)
        ]
        assert fake.changes.log == [
            ("app-profile", p.app_profile_id, "PUT") for p in result.application_profiles
        ]
        assert fake.subscriptions.rows == {APP: Subscription(APP, CALLBACK, False)}
        assert decided == [("authorization.decide", "ok")] * len(profiled) + [
            ("authorization.decide", "denied")
        ] * len(failures)
        created = [e[2] for e in fake.audit.events if e[1] == "profile.create"]
        assert created == [f"app-profile/{p.app_profile_id}" for p in result.application_profiles]
    else:
        # A refusal is returned, not raised, so that its audit events are committed: nothing else is.
        assert isinstance(result, Refusal)
        assert (result.error.status, result.error.cause) == (403, outcome)
        assert [p.reason for p in result.error.invalid_params or ()] == [
            f"{services[0]['serviceType']}: {outcome}"
        ]
        assert (fake.profiles.rows, fake.subscriptions.rows, fake.changes.log) == ({}, {}, [])
        assert decided == [("authorization.decide", "denied")]
        assert outcome in (fake.audit.events[0][4] or "")
    assert fake.outbox.queued == []  # the response carries the profiles: no notification


@pytest.mark.parametrize("kind", ["AUTHORIZE", "REMOVE"])
def test_an_application_the_administrator_did_not_register_is_refused_with_nothing_written(kind: str) -> None:
    fake = world(allowed=None)
    fake.profiles.rows["kept"] = _profile_of(world(allowed=[GM]), [GM])[0]
    before = repr(fake.written())

    with pytest.raises(ProblemError) as refused:
        authorize(fake, authorize_request(GM, kind=kind))

    assert (refused.value.status, refused.value.cause) == (403, "APP_NOT_REGISTERED")
    assert repr(fake.written()) == before


@pytest.mark.parametrize(
    ("websocket", "destination", "subscription"),
    [
        (None, CALLBACK, Subscription(APP, CALLBACK, False)),
        (True, CALLBACK, Subscription(APP, None, True)),  # the socket wins over a callback
        (None, None, Subscription(APP, None, False)),
    ],
)
def test_authorize_subscribes_the_application_as_it_asked(
    websocket: bool | None, destination: str | None, subscription: Subscription
) -> None:
    fake = world(allowed=[GM])
    extra: dict[str, Any] = {"websocketNotification": websocket} if websocket else {}
    request = authorize_request(GM, **extra)
    assert isinstance(authorize(fake, request, destination), AuthorizationResponse)
    assert fake.subscriptions.rows == {APP: subscription}


def test_authorizing_again_keeps_the_profile_its_index_and_version() -> None:
    fake = world(allowed=[GM, CM], instances=BOTH)
    first = authorize(fake, authorize_request(GM))
    fake.changes.log.clear()
    fake.audit.events.clear()

    again = authorize(fake, authorize_request(GM, CM))

    assert isinstance(first, AuthorizationResponse) and isinstance(again, AuthorizationResponse)
    assert again.application_profiles[0] == first.application_profiles[0]  # same id, index, version 1
    cm = again.application_profiles[1]
    assert (cm.authorized_service, cm.app_profile_index, cm.version) == ("CM", 2, 1)
    assert fake.changes.log == [("app-profile", cm.app_profile_id, "PUT")]  # nothing new for GM
    assert [e[1] for e in fake.audit.events] == ["authorization.decide"] * 2 + ["profile.create"]


def test_authorizing_again_with_other_capabilities_makes_a_new_version() -> None:
    fake = world(allowed=[GM])
    first = authorize(fake, authorize_request(GM))
    narrowed = authorize(fake, authorize_request({**GM, "capabilities": ["groups"]}))

    assert isinstance(first, AuthorizationResponse) and isinstance(narrowed, AuthorizationResponse)
    (before,), (after,) = first.application_profiles, narrowed.application_profiles
    assert (after.app_profile_id, after.app_profile_index, after.version) == (before.app_profile_id, 1, 2)
    resources = [
        r.resource_name for v in after.service_interface_description.versions for r in v.resources or ()
    ]
    assert resources == ["groups"]
    assert fake.changes.log[-1] == ("app-profile", after.app_profile_id, "PUT")
    assert fake.profiles.rows[after.app_profile_id].requested is not None


# ---------------------------------------------------------------- REMOVE


def _profile_of(fake: FakeTx, services: list[dict[str, Any]]) -> list[ProfileRecord]:
    assert isinstance(authorize(fake, authorize_request(*services)), AuthorizationResponse)
    return sorted(fake.profiles.rows.values(), key=lambda r: r.profile.app_profile_index)


# what is removed (services, and whether the request lists the GM profile's id, another id, or none)
# -> the pools still profiled, whether the subscription remains
REMOVE = [
    pytest.param([GM], None, ["CM/cms"], True, id="one service of two"),
    pytest.param([GM_GMS], None, ["CM/cms"], True, id="one pool by name"),
    pytest.param([{"serviceType": "gm"}], None, ["CM/cms"], True, id="service type in any case"),
    pytest.param([GM, CM], None, [], False, id="every service: unsubscribed too"),
    pytest.param([GM], "gm", ["CM/cms"], True, id="the listed profile"),
    pytest.param([GM, CM], "gm", ["CM/cms"], True, id="only the listed profile"),
    pytest.param([GM], "other", ["GM/gms", "CM/cms"], True, id="another profile listed"),
    pytest.param([{"serviceType": "GM", "serviceName": "west"}], None, ["GM/gms", "CM/cms"], True,
                 id="another pool"),
    pytest.param([{"serviceType": "KM"}], None, ["GM/gms", "CM/cms"], True, id="another service"),
]  # fmt: skip


@pytest.mark.parametrize(("services", "listed", "remaining", "subscribed"), REMOVE)
def test_remove_withdraws_what_it_names_and_needs_no_grant(
    services: list[dict[str, Any]], listed: str | None, remaining: list[str], subscribed: bool
) -> None:
    fake = world(allowed=[GM, CM], instances=BOTH)
    gm, cm = _profile_of(fake, [GM, CM])
    fake.grants.rows.clear()  # the user's grant is revoked: removing never needs one
    fake.changes.log.clear()
    fake.audit.events.clear()
    ids = {"gm": [gm.profile.app_profile_id], "other": [cm.profile.app_profile_id + "-x"]}.get(listed or "")

    result = authorize(
        fake,
        authorize_request(
            *services, kind="REMOVE", **({"applicationProfileInformation": ids} if ids else {})
        ),
    )

    assert isinstance(result, AuthorizationResponse) and result.result == "SUCCESS"
    left = [f"{p.authorized_service}/{p.service_name}" for p in result.application_profiles]
    assert left == remaining
    assert sorted(f"{r.pool[0]}/{r.pool[1]}" for r in fake.profiles.rows.values()) == sorted(remaining)
    gone = [r.profile.app_profile_id for r in (gm, cm) if f"{r.pool[0]}/{r.pool[1]}" not in remaining]
    assert fake.changes.log == [("app-profile", g, "DELETE") for g in gone]
    assert [(e[1], e[2]) for e in fake.audit.events] == [("profile.remove", f"app-profile/{g}") for g in gone]
    assert (APP in fake.subscriptions.rows) is subscribed


def test_deleting_the_application_withdraws_everything_it_was_authorized_for() -> None:
    fake = world(allowed=[GM, CM], instances=BOTH)
    fake.grants.rows[(APP, "bob")] = Grant(app_id=APP, mc_service_id="bob", version=1, created_at=AT)
    fake.grants.rows[("app-2", USER)] = Grant(app_id="app-2", mc_service_id=USER, version=1, created_at=AT)
    gm, cm = _profile_of(fake, [GM, CM])
    fake.changes.log.clear()

    _scripts().delete_app(fake.tx, actor="ops", client_id=APP, now=NOW + 1)

    assert (fake.apps.rows, fake.profiles.rows, fake.subscriptions.rows) == ({}, {}, {})
    assert list(fake.grants.rows) == [("app-2", USER)]  # another application's grant stays
    # The application hears of each withdrawn profile (its pointer now leads to a 404).
    assert fake.outbox.queued == [
        (APP, gm.profile.app_profile_id, 2, CALLBACK),
        (APP, cm.profile.app_profile_id, 2, CALLBACK),
    ]
    assert fake.changes.log == [
        ("app-profile", gm.profile.app_profile_id, "DELETE"),
        ("app-profile", cm.profile.app_profile_id, "DELETE"),
        ("user-authorization", f"{APP}/{USER}", "DELETE"),
        ("user-authorization", f"{APP}/bob", "DELETE"),
        ("external-app", APP, "DELETE"),
    ]
