"""The SDK's ExternalApplication against the real registry in-process (seed 10.X.3 and 10.X.4):
discovery, authorization, profiles, and reconfiguration through a real callback listener on a
loopback socket that the registry's own notifier POSTs to."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.types import ASGIApp

from asgate.client import (
    ApplicationProfile,
    CallbackListener,
    ClientCredentials,
    ExternalApplication,
    ProblemError,
    ProfileNotification,
    SyncExternalApplication,
    WebSocketListener,
)
from asgate.kernel.settings import Settings
from tests.conftest import Mint, Provision, bearer
from tests.mcworld import CONSOLE, World, mc_world
from tests.registry.conftest import ADMIN, admin_app, admin_grant, gm_registration, register

URL = "http://registry.test"
ALICE = "alice@mc.example"


@pytest.fixture
def backend() -> str:
    """The SDK is tested against the registry, not the store: SQLite is enough."""
    return "sqlite"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(registry_retry_base=0.05, registry_retry_max=0.4)


class Admin:
    """The administrator, through mcx-registry-admin/v1 with a token scoped mcx-registry-admin."""

    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.headers = bearer(token)

    async def edit(self, profile_id: str, **edit: Any) -> dict[str, Any]:
        response = await self.http.put(f"{ADMIN}/app-profiles/{profile_id}", json=edit, headers=self.headers)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def withdraw(self, profile_id: str) -> None:
        response = await self.http.delete(f"{ADMIN}/app-profiles/{profile_id}", headers=self.headers)
        assert response.status_code == 204, response.text


@pytest.fixture
async def admin(http: httpx.AsyncClient, mint: Mint, provision: Provision) -> Admin:
    """A GM pool (gms) and a CM pool (cms); console-1 may use GM (max mcpttp.10); alice is granted."""
    ops = mint("ops", "mcx-registry-admin")
    for client_id, pool in (("gms-1", "GM/gms"), ("gms-2", "CM/cms")):  # issue 8 item 1
        await provision(client_id, scopes=("mcx-service-registration",), service_pools=(pool,))
        approval = {"versions": gm_registration()["versions"]}
        response = await http.put(f"{ADMIN}/pools/{pool}/interface", json=approval, headers=bearer(ops))
        assert response.status_code == 200, response.text
    service = mint("gms-1", "mcx-service-registration")
    assert (await register(http, service, gm_registration())).status_code == 201
    cm = gm_registration(port=9201, name="cms", serviceType="CM")
    cm["interfaces"][0] |= {"referencePoint": "CSC-4", "apiPrefix": "/cm"}
    assert (await register(http, mint("gms-2", "mcx-service-registration"), cm)).status_code == 201
    assert (await admin_app(http, ops, "console-1", maxPriority="mcpttp.10")).status_code == 201
    assert (await admin_grant(http, ops, "console-1", ALICE)).status_code == 201
    await provision("console-1", scopes=("mcx-registry",))
    return Admin(http, ops)


@pytest.fixture
async def console(app: ASGIApp, admin: Admin) -> AsyncIterator[ExternalApplication]:
    """console-1 as an SDK user: real client credentials at the real token endpoint."""
    credentials = ClientCredentials(f"{URL}/oauth2/token", "console-1", "console-1-secret", "mcx-registry")
    async with ExternalApplication(URL, credentials, transport=httpx.ASGITransport(app=app)) as sdk:
        yield sdk


class Calls:
    """What the application's callbacks saw, and a way to wait for them."""

    def __init__(self) -> None:
        self.reconfigured: list[ApplicationProfile] = []
        self.withdrawn: list[str] = []
        self.notified: list[ProfileNotification] = []
        self._changed = asyncio.Event()

    async def on_reconfigure(self, profile: ApplicationProfile) -> None:
        self.reconfigured.append(profile)
        self._changed.set()

    def on_withdrawn(self, profile_id: str) -> None:  # a plain function works too
        self.withdrawn.append(profile_id)
        self._changed.set()

    def on_notification(self, note: ProfileNotification) -> None:
        self.notified.append(note)

    async def until(self, predicate: Callable[[Calls], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def calls(console: ExternalApplication) -> Calls:
    seen = Calls()
    console.on_reconfigure = seen.on_reconfigure
    console.on_withdrawn = seen.on_withdrawn
    console.on_notification = seen.on_notification
    return seen


# ---------------------------------------------------------------- seed 10.X.3


async def test_discovery_with_criteria(console: ExternalApplication) -> None:
    async def names(**criteria: Any) -> list[str]:
        return [s.service_name for s in await console.get_service_information(ALICE, **criteria)]

    (gm,) = await console.get_service_information(ALICE, service_type="GM")
    assert (gm.service_type, gm.reference_points, gm.available_instances) == ("GM", ["CSC-2"], 1)
    assert gm.interfaces is None  # an untrusted application never learns a backend address
    assert await names() == ["gms"]  # CM is registered, but console-1 may not use it
    assert await names(reference_point="CSC-2", protocol="HTTP", api_version="v1", capability="members") == [
        "gms"
    ]
    assert await names(capability="nope") == []
    assert await names(environment={"region": "north"}) == ["gms"]
    assert await names(environment={"region": "north", "site": "b"}) == []
    assert await console.get_service_information("bob@mc.example") == []  # bob has no grant
    with pytest.raises(ValueError, match="mc_service_id is required"):
        await console.get_service_information()  # nobody logged in to default to


async def test_authorize_success_partial_and_refusals(
    console: ExternalApplication, admin: Admin, settings: Settings
) -> None:
    granted = await console.authorize(ALICE, services=["GM"])
    (profile,) = granted.application_profiles
    assert (granted.result, profile.authorized_service, profile.version) == ("SUCCESS", "GM", 1)
    sas = settings.registry_sas_url or f"http://{settings.sas_listen}"  # the access server, not gms
    assert profile.service_location_information == f"{sas}/{profile.app_profile_index}"
    assert profile.service_interface_description.max_priority == "mcpttp.10"
    assert console.profiles == {profile.app_profile_id: profile}
    # GM granted, CM not allowed: a partial success that names the failure and its cause.
    partial = await console.authorize(ALICE, services=["GM", "CM"])
    assert partial.result == "PARTIAL_SUCCESS"
    assert [(f.service_type, f.cause) for f in partial.failures or []] == [("CM", "SERVICE_NOT_ALLOWED")]
    refusals: list[tuple[dict[str, Any], str]] = [
        ({"mc_service_id": "bob@mc.example", "services": ["GM"]}, "USER_NOT_AUTHORIZED"),
        ({"services": ["CM"]}, "SERVICE_NOT_ALLOWED"),
        ({"services": ["GM:nope"]}, "CAPABILITY_NOT_FOUND"),
        ({"services": ["KM"]}, "SERVICE_NOT_FOUND"),
        ({"services": ["GM"], "notification_destination": "http://169.254.169.254/x"}, "URI_NOT_ALLOWED"),
    ]
    for arguments, cause in refusals:
        with pytest.raises(ProblemError) as refused:
            await console.authorize(arguments.pop("mc_service_id", ALICE), **arguments)
        status = 400 if cause == "URI_NOT_ALLOWED" else 403  # a bad value, not a decision
        assert (refused.value.status, refused.value.cause) == (status, cause), arguments


async def test_an_unregistered_application_is_told_so(
    app: ASGIApp, admin: Admin, provision: Provision
) -> None:
    await provision("console-9", scopes=("mcx-registry",))
    async with ExternalApplication(
        URL, ("console-9", "console-9-secret"), transport=httpx.ASGITransport(app=app)
    ) as stranger:
        with pytest.raises(ProblemError) as refused:
            await stranger.authorize(ALICE, services=["GM"])
    assert refused.value.cause == "APP_NOT_REGISTERED" and "console-9" in str(refused.value)


async def test_wrong_credentials_surface_as_a_problem(app: ASGIApp, admin: Admin) -> None:
    async with ExternalApplication(
        URL, ("console-1", "not-the-secret"), transport=httpx.ASGITransport(app=app)
    ) as impostor:
        with pytest.raises(ProblemError, match="token request refused: invalid_client") as refused:
            await impostor.get_service_information(ALICE)
    assert refused.value.status == 401


async def test_profile_versions_and_removal(console: ExternalApplication, admin: Admin) -> None:
    (profile,) = (await console.authorize(ALICE, services=["GM"])).application_profiles
    await admin.edit(profile.app_profile_id, maxPriority="mcpttp.12")
    current = await console.get_app_profile(profile.app_profile_id)
    first = await console.get_app_profile(profile.app_profile_id, version=1)
    assert (current.version, current.service_interface_description.max_priority) == (2, "mcpttp.12")
    assert (first.version, first.service_interface_description.max_priority) == (1, "mcpttp.10")
    with pytest.raises(ProblemError, match="no version 7") as missing:
        await console.get_app_profile(profile.app_profile_id, version=7)
    assert missing.value.status == 404
    # REMOVE by profile id: the services default to the profile's own.
    removed = await console.remove_authorization(ALICE, profile_ids=[profile.app_profile_id])
    assert (removed.result, removed.application_profiles, console.profiles) == ("SUCCESS", [], {})
    with pytest.raises(ProblemError) as gone:
        await console.get_app_profile(profile.app_profile_id)
    assert (gone.value.status, gone.value.cause) == (404, "CONTEXT_NOT_FOUND")


# ---------------------------------------------------------------- seed 10.X.4


async def test_callback_listener_reconfigures_once_after_an_administrator_edit(
    console: ExternalApplication, admin: Admin, calls: Calls
) -> None:
    destination = await console.listen()
    assert destination.startswith("http://127.0.0.1:") and "/notify/" in destination
    (profile,) = (await console.authorize(ALICE, services=["GM"])).application_profiles
    groups_only = {
        "apiVersion": "v1",
        "resources": [{"resourceName": "groups", "uri": "/groups", "commType": "REQUEST_RESPONSE"}],
    }
    await admin.edit(profile.app_profile_id, maxPriority="mcpttp.12", versions=[groups_only])
    await calls.until(lambda c: len(c.reconfigured) >= 1)
    await console.reconfigurer.wait_idle(5)
    (new,) = calls.reconfigured
    assert new.version == 2 and new.service_interface_description.max_priority == "mcpttp.12"
    assert [r.resource_name for r in new.service_interface_description.versions[0].resources or []] == [
        "groups"
    ]
    assert console.profiles[profile.app_profile_id] == new
    assert [(n.app_profile_id, n.version) for n in calls.notified] == [(profile.app_profile_id, 2)]
    assert console.listener is not None and console.listener.received == 1
    # The administrator withdraws the profile: the application learns it is gone.
    await admin.withdraw(profile.app_profile_id)
    await calls.until(lambda c: c.withdrawn == [profile.app_profile_id])
    assert console.profiles == {} and len(calls.reconfigured) == 1


async def test_stale_and_out_of_order_notifications_reconfigure_once_per_version(
    console: ExternalApplication, admin: Admin, calls: Calls
) -> None:
    (profile,) = (await console.authorize(ALICE, services=["GM"])).application_profiles
    pid = profile.app_profile_id
    await admin.edit(pid, maxPriority="mcpttp.11")
    await admin.edit(pid, maxPriority="mcpttp.12")  # version 3 is current

    def note(version: int) -> ProfileNotification:
        return ProfileNotification(app_profile_id=pid, app_profile_ref=f"{URL}/x", version=version)

    # Out of order, duplicated, and one for the version the application already has (1).
    for version in (3, 2, 3, 1, 2):
        console.reconfigurer.notified(note(version))
    await console.reconfigurer.wait_idle(5)
    assert [p.version for p in calls.reconfigured] == [3]
    assert len(calls.notified) == 5
    # A newer version later is applied; the older ones that straggle in are not.
    await admin.edit(pid, maxPriority="mcpttp.13")
    for version in (2, 4, 4):
        console.reconfigurer.notified(note(version))
    await console.reconfigurer.wait_idle(5)
    assert [p.version for p in calls.reconfigured] == [3, 4]
    assert calls.reconfigured[-1].service_interface_description.max_priority == "mcpttp.13"


async def test_a_failing_application_callback_does_not_stop_reconfiguration(
    console: ExternalApplication, admin: Admin, calls: Calls
) -> None:
    (profile,) = (await console.authorize(ALICE, services=["GM"])).application_profiles
    failures: list[int] = []

    def broken(new: ApplicationProfile) -> None:
        failures.append(new.version)
        raise RuntimeError("the application's own bug")

    console.on_reconfigure = broken
    await console.listen()
    await console.authorize(ALICE, services=["GM"])  # subscribes the listener
    await admin.edit(profile.app_profile_id, maxPriority="mcpttp.3")
    async with asyncio.timeout(10):
        while not failures:
            await asyncio.sleep(0.02)
    console.on_reconfigure = calls.on_reconfigure
    await admin.edit(profile.app_profile_id, maxPriority="mcpttp.4")
    await calls.until(lambda c: len(c.reconfigured) == 1)
    assert failures == [2] and calls.reconfigured[0].version == 3


async def test_the_callback_listener_answers_only_valid_notifications() -> None:
    taken: list[ProfileNotification] = []
    listener = CallbackListener(taken.append, path="/hooks/registry")
    await listener.start()
    destination = listener.destination
    body = {"appProfileId": "p1", "appProfileRef": "http://x/p1", "version": 2, "notificationId": 9}
    async with httpx.AsyncClient() as network:
        ok = await network.post(destination, json=body)
        again = await network.post(destination, json={**body, "version": 3})  # same connection
        bad = await network.post(destination, json={"appProfileId": "p1"})
        null = await network.post(destination, json={**body, "notificationId": None})
        wrong_method = await network.get(destination)
        elsewhere = await network.post(destination.replace("/hooks/registry", "/other"), json=body)
    await listener.stop()
    assert (ok.status_code, again.status_code, ok.content) == (204, 204, b"")
    assert (bad.status_code, bad.headers["content-type"], bad.json()["cause"]) == (
        400,
        "application/problem+json",
        "INVALID_MSG_FORMAT",
    )
    assert (null.status_code, wrong_method.status_code, elsewhere.status_code) == (400, 405, 404)
    assert [(n.app_profile_id, n.version, n.notification_id) for n in taken] == [("p1", 2, 9), ("p1", 3, 9)]
    # On every interface the listener cannot know the address the registry should use.
    with pytest.raises(ValueError, match="give public_url"):
        CallbackListener(taken.append, host="0.0.0.0")
    assert CallbackListener(taken.append, host="0.0.0.0", public_url="https://cad.example/n").destination == (
        "https://cad.example/n"
    )


async def test_session_needs_a_user_and_a_valid_priority(console: ExternalApplication) -> None:
    (profile,) = (await console.authorize(ALICE, services=["GM"])).application_profiles
    with pytest.raises(ValueError, match="mcpttp.N or mcpttq.N"):
        console.session(profile, priority="urgent")
    with pytest.raises(ValueError, match="no application profile 'nope' in hand"):
        console.session("nope")
    async with console.session(profile.app_profile_id, priority="mcpttq.15") as sas:
        assert str(sas.base_url) == f"{profile.service_location_information}/"
        assert sas.headers["resource-priority"] == "mcpttq.15"
        with pytest.raises(RuntimeError, match="no MC user"):
            await sas.get("/groups")


# ---------------------------------------------------------------- against a live asgate up (SAS included)


def live(test: Callable[..., Any]) -> Callable[..., Any]:
    """Needs real sockets: ``asgate up`` with its service access server, sample GM and MCPTT."""
    for mark in (
        pytest.mark.slow,
        pytest.mark.xdist_group("process"),
        pytest.mark.asyncio(loop_scope="module"),
    ):
        test = mark(test)
    return test


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with mc_world(tmp_path_factory.mktemp("world") / "data") as started:
        yield started


@live
async def test_websocket_listener_acknowledges_and_survives_a_registry_restart(world: World) -> None:
    calls = Calls()
    async with ExternalApplication(world.url, CONSOLE, on_reconfigure=calls.on_reconfigure) as console:
        assert await console.listen("websocket", retry_max=0.5) == "websocket"
        (gm,) = (await console.authorize(ALICE, services=["GM"])).application_profiles
        path = f"/app-profiles/{gm.app_profile_id}"
        assert (await world.admin("PUT", path, json={"maxPriority": "mcpttp.11"})).status_code == 200
        await calls.until(lambda c: len(c.reconfigured) == 1)
        assert calls.reconfigured[0].version == gm.version + 1
        # The registry counts it delivered only because the application acknowledged it.
        entry = await world.delivered(
            lambda e: e["details"] == {"appProfileId": gm.app_profile_id, "version": gm.version + 1}
        )
        assert (entry["destination"], entry["attempts"]) == ("websocket", 1)
        # The registry restarts; an edit made before the application is back is delivered on its
        # new socket, and the application reconfigures exactly once more.
        listener = console.listener
        assert isinstance(listener, WebSocketListener)
        await asyncio.to_thread(world.restart)
        assert (await world.admin("PUT", path, json={"maxPriority": "mcpttp.12"})).status_code == 200
        await calls.until(lambda c: len(c.reconfigured) == 2, timeout=15)
        assert listener.connections >= 2 and listener.received == 2
        assert [p.service_interface_description.max_priority for p in calls.reconfigured] == [
            "mcpttp.11",
            "mcpttp.12",
        ]


@live
async def test_session_and_websocket_reach_the_services_through_the_access_server(world: World) -> None:
    login = world.login()
    async with ExternalApplication(world.url, CONSOLE, user=login) as console:
        await console.login(world.browser())
        assert console.mc_service_id == ALICE  # from the ID token: the default for every call
        answer = await console.authorize(services=["GM", "MCPTT"])
        gm, mcptt = sorted(answer.application_profiles, key=lambda p: p.authorized_service)
        assert gm.service_location_information == f"{world.sas_url}/{gm.app_profile_index}"
        async with console.session(gm, priority="mcpttp.9") as sas:
            created = await sas.post("/groups", json={"groupId": "fire-1", "displayName": "Fire"})
            listed = await sas.get("/groups")
        assert created.status_code == 201 and created.json()["owner"] == ALICE  # the SAS asserted alice
        assert listed.status_code == 200 and [g["groupId"] for g in listed.json()["groups"]] == ["fire-1"]
        assert listed.headers["resource-priority"] == "mcpttp.9"  # the priority applied, indicated back
        assert listed.headers["x-sample-instance"] == "gm-1"
        # Refusals are the access server's own ProblemDetails, raised as ProblemError when asked.
        async with console.session(gm, priority="mcpttp.13", raise_errors=True) as too_high:
            with pytest.raises(ProblemError) as refused:
                await too_high.get("/groups")
        assert (refused.value.status, refused.value.cause) == (403, "PRIORITY_NOT_AUTHORIZED")
        async with console.session(gm, raise_errors=True) as sas:
            with pytest.raises(ProblemError) as outside:
                await sas.get("/configurations/me")
        assert outside.value.cause == "RESOURCE_NOT_AUTHORIZED"
        # MCPTT signalling over a WebSocket through the access server, with the same headers.
        async with console.websocket(mcptt, "/signalling", priority="mcpttp.10", subprotocols=["sip"]) as ws:
            await ws.send("OPTIONS sip:mcptt SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n")
            answered = str(await ws.recv())
        assert answered.startswith("SIP/2.0 200 OK") and f"P-Asserted-Identity: <sip:{ALICE}>" in answered
        assert "X-Upgrade-Resource-Priority: mcpttp.10" in answered
        with pytest.raises(ProblemError) as upgrade_refused:
            async with console.websocket(mcptt, "/signalling", priority="mcpttp.15"):
                pass
        assert (upgrade_refused.value.status, upgrade_refused.value.cause) == (403, "PRIORITY_NOT_AUTHORIZED")


@live
async def test_the_sync_facade_does_the_same_without_async(world: World) -> None:
    """A blocking program (here in a worker thread: this test's loop runs the sample services)."""
    reconfigured: list[int] = []

    def program() -> tuple[int, str | None, list[int]]:
        with SyncExternalApplication(
            world.url, CONSOLE, user=world.login(), on_reconfigure=lambda p: reconfigured.append(p.version)
        ) as console:
            console.login(world.browser())
            assert [s.service_name for s in console.get_service_information(service_type="GM")] == [
                "sample-gm"
            ]
            assert console.listen().startswith("http://127.0.0.1:")
            (gm,) = console.authorize(services=["GM"]).application_profiles
            with console.session(gm, priority="mcpttp.5") as sas:
                response = sas.get("/groups")
            world_edit(gm.app_profile_id)
            deadline = time.monotonic() + 10
            while not reconfigured and time.monotonic() < deadline:
                time.sleep(0.05)
            assert console.get_app_profile(gm.app_profile_id).version == gm.version + 1
            return response.status_code, response.headers.get("resource-priority"), reconfigured

    def world_edit(profile_id: str) -> None:  # the administrator, with the CLI
        world.cli("profiles", "update", profile_id, "--max-priority", "mcpttp.11")

    status, applied, versions = await asyncio.to_thread(program)
    assert (status, applied) == (200, "mcpttp.5")
    assert len(versions) == 1
