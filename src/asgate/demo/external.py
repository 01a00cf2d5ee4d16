"""Seed 10.X.3-10.X.5: an external application (dispatch console ``console-1``) is configured at
the service registry server, reconfigured when the administrator edits its profile, and reaches
the MC services only through the service access server, for MC user alice. Everything the
application does goes through the SDK's ``ExternalApplication``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from asgate.client import (
    ApplicationProfile,
    ExternalApplication,
    ProfileNotification,
    ScriptedBrowser,
    UserLogin,
)
from asgate.demo.narrate import Narrator
from asgate.demo.record import Exchange
from asgate.demo.system import ALICE, APP, OPS, DemoSystem

REGISTRY = "/mcx-registry/v1"
CSC15 = "/mcx-access-profiles/v1"
ADMIN = "/mcx-registry-admin/v1"
REDUCED_PRIORITY = "mcpttp.10"


@dataclass
class Console:
    """The external application, as the demo follows it."""

    app: ExternalApplication
    notified: list[ProfileNotification] = field(default_factory=list)
    reconfigured: asyncio.Queue[ApplicationProfile] = field(default_factory=asyncio.Queue)


async def _via_sas(
    system: DemoSystem,
    app: ExternalApplication,
    gm: ApplicationProfile,
    path: str,
    priority: str | None = None,
) -> Exchange:
    """GET ``path`` through the SAS with the MC user's token; returns the exchange."""
    mark = system.journal.mark()
    async with app.session(gm, priority=priority, transport=system.journal.transport(APP)) as sas:
        await sas.get(path)
    return system.journal.last(mark, "GET", "/")


async def external_application(system: DemoSystem, n: Narrator) -> None:
    login = UserLogin(system.url, APP, client_secret=system.secrets[APP], scope="openid 3gpp:mc:ptt_service")
    app = ExternalApplication(
        system.url, (APP, system.secrets[APP]), user=login, transport=system.journal.transport(APP)
    )
    console = Console(app)
    app.on_notification = console.notified.append
    app.on_reconfigure = console.reconfigured.put_nowait
    async with app:
        gm = await configuration(system, n, console)
        gm = await reconfiguration(system, n, console, gm)
        instance = await access(system, n, console, gm)
        await failover(system, n, console, gm, instance)


def _carries(exchange: Exchange, profile: ApplicationProfile, version: int) -> bool:
    """A CSC-15 update (one resource or a batch) acknowledged, carrying ``profile`` at ``version``."""
    if exchange.actor != "service registry server" or not exchange.path.startswith(CSC15):
        return False
    body = exchange.request_json
    changes = body.get("changes", []) if isinstance(body, dict) and "changes" in body else []
    payloads = [c.get("payload") or {} for c in changes] or [body if isinstance(body, dict) else {}]
    return any(
        p.get("appProfileId") == profile.app_profile_id and p.get("version") == version for p in payloads
    )


def _notifies(exchange: Exchange, version: int) -> bool:
    """The registry's notify application profile request for ``version``."""
    body = exchange.request_json
    return (
        exchange.actor == "service registry server"
        and exchange.method == "POST"
        and isinstance(body, dict)
        and "appProfileRef" in body
        and body.get("version") == version
    )


async def _admin(system: DemoSystem, method: str, path: str, **kw: Any) -> Exchange:
    """The administrator through mcx-registry-admin/v1; returns the exchange."""
    mark = system.journal.mark()
    async with system.client("administrator") as http:
        token = await system.credentials(OPS, "mcx-registry-admin").token(http)
        await http.request(
            method, f"{system.url}{ADMIN}{path}", headers={"Authorization": f"Bearer {token}"}, **kw
        )
    return system.journal.last(mark, method, ADMIN)


async def set_policy(system: DemoSystem, n: Narrator) -> None:
    """What the MC service provider decides before the application runs (seed 5.2.8)."""
    title = "The administrator lets console-1 use GM and MCPTT up to mcpttp.12, for alice (seed 5.2.8)"
    async with n.step(0, title) as step:
        policy = {
            "displayName": "Dispatch console",
            "allowedServices": [{"serviceType": "GM"}, {"serviceType": "MCPTT"}],
            "maxPriority": "mcpttp.12",
        }
        for exchange in (
            await _admin(system, "PUT", f"/apps/{APP}", json=policy),
            await _admin(system, "PUT", f"/grants/{APP}/{ALICE}", json={}),
        ):
            step.exchange(exchange)
            step.check(exchange.status in (200, 201), f"{exchange.path} accepted")


async def configuration(system: DemoSystem, n: Narrator, console: Console) -> ApplicationProfile:
    journal, app = system.journal, console.app
    n.procedure("10.X.3", "Configuration of the external application", "seed figure 10.X.3-1; CSC-14, CSC-15")
    async with n.step(
        1, "The application sends a get service information request, narrowed to GM services"
    ) as step:
        mark = journal.mark()
        services = await app.get_service_information(ALICE, service_type="GM")
        step.exchange(journal.last(mark, "POST", "/oauth2/token"))
        query = journal.last(mark, "GET", f"{REGISTRY}/service-information")
        step.sent(query)
    async with n.step(2, "The registry answers with the service information list") as step:
        step.received(query)
        found = {(s.service_type, s.service_name) for s in services}
        step.check(("GM", "sample-gm") in found, "GM/sample-gm discovered")
        step.note("the instances' addresses stay hidden from an untrusted application: it will use the SAS")
    destination = await app.listen()
    async with n.step(3, "The application requests authorization for GM, MCPTT and MCData") as step:
        step.note(f"it listens for profile notifications at {destination}")
        mark = journal.mark()
        answer = await app.authorize(ALICE, services=["GM", "MCPTT", "MCData"])
        authorize = journal.last(mark, "POST", f"{REGISTRY}/authorizations")
        step.sent(authorize)
    gm = next((p for p in answer.application_profiles if p.authorized_service == "GM"), None)
    async with n.step(
        4, "The registry grants what the policy allows, stores the profiles, subscribes the application"
    ) as step:
        refused = {f.service_type: f.cause for f in answer.failures or []}
        step.check(gm is not None and answer.result == "PARTIAL_SUCCESS", "GM granted, not everything")
        step.check(refused.get("MCData") == "SERVICE_NOT_ALLOWED", "MCData refused: not in the policy")
        granted = ", ".join(p.authorized_service for p in answer.application_profiles)
        step.note(f"granted: {granted}; denied: MCData ({refused['MCData']})")
        step.exchange(await _admin(system, "GET", "/app-profiles", params={"app-id": APP}))
    assert gm is not None
    async with n.step(
        5, "The registry answers with the application profiles: where and what to call"
    ) as step:
        step.received(authorize)
        limits = gm.service_interface_description
        resources = [r.uri for v in limits.versions for r in v.resources or []]
        where = f"GM profile v{gm.version}: send to {gm.service_location_information} (the SAS)"
        step.note(f"{where}, resources {', '.join(resources)}, max priority {limits.max_priority}")
        step.check(gm.service_location_information.startswith(system.sas_url), "the SAS as service location")
    async with n.step(6, "The registry sends an update application profile request to the SAS") as step:
        pushed = await journal.wait_for(lambda e: _carries(e, gm, gm.version))
        step.sent(pushed)
    async with n.step(7, "The SAS acknowledges it") as step:
        step.received(pushed)
        step.check(pushed.status < 300, "a 2xx acknowledgement")
    return gm


async def reconfiguration(
    system: DemoSystem, n: Narrator, console: Console, gm: ApplicationProfile
) -> ApplicationProfile:
    journal = system.journal
    n.procedure("10.X.4", "Reconfiguration of an external application", "seed figure 10.X.4-1; CSC-14")
    path = f"/app-profiles/{gm.app_profile_id}"
    async with n.step(
        1, f"The administrator restricts the GM profile: max priority {REDUCED_PRIORITY}"
    ) as step:
        edit = await _admin(system, "PUT", path, json={"maxPriority": REDUCED_PRIORITY})
        step.exchange(edit)
        step.check(edit.status == 200, "the edit accepted")
    version = gm.version + 1
    async with n.step(
        2, "The registry sends a notify application profile request to the application"
    ) as step:
        notify = await journal.wait_for(lambda e: _notifies(e, version))
        step.sent(notify)
    async with n.step(3, "The application acknowledges the notification") as step:
        step.received(notify)
        step.check(notify.status == 204, "204 from the application's listener")
    async with n.step(4, "The application sends a get application profile request") as step:
        fetch = await journal.wait_for(lambda e: e.actor == APP and e.path == f"{REGISTRY}{path}")
        step.sent(fetch)
    async with n.step(5, "The registry answers with the updated profile") as step:
        step.received(fetch)
        step.check((fetch.response_json or {}).get("version") == version, f"version {version}")
    async with n.step(6, "The application reconfigures itself") as step:
        profile = await asyncio.wait_for(console.reconfigured.get(), 10)
        limit = profile.service_interface_description.max_priority
        step.note(f"on_reconfigure(profile): GM version {profile.version}, max priority {limit}")
        step.check(limit == REDUCED_PRIORITY, f"max priority {REDUCED_PRIORITY}")
        pushed = await journal.wait_for(lambda e: _carries(e, profile, version))
        step.note("the SAS got the same version (CSC-15), so it now enforces the new limit:")
        step.exchange(pushed)
    return profile


async def access(system: DemoSystem, n: Narrator, console: Console, gm: ApplicationProfile) -> str:
    """Returns the instance that answered."""
    journal, app = system.journal, console.app
    n.procedure("10.X.5", "Authorized external application accessing the services", "seed figure 10.X.5-1")
    async with n.step(
        1, "The application sends a service request for MC user alice, at priority mcpttp.9"
    ) as step:
        step.note("alice signs in at the IdM's login page (authorization code + PKCE, loopback redirect):")
        mark = journal.mark()
        browser = ScriptedBrowser("alice", system.alice_password, http=system.client("alice's browser"))
        await app.login(browser)
        for exchange in journal.since(mark):
            if exchange.path.startswith(("/oauth2/authorize", "/oauth2/token")):
                step.exchange(exchange)
        step.note(
            f"ID token verified: MC service ID {app.mc_service_id}; the request carries her access token"
        )
        mark = journal.mark()
        async with app.session(gm, priority="mcpttp.9", transport=journal.transport(APP)) as sas:
            await sas.post("/groups", json={"groupId": "fire-1", "displayName": "Fire crew 1"})
        request = journal.last(mark, "POST", "/")
        step.sent(request)
    async with n.step(2, "The SAS checks the application's profile and alice's authorization for it") as step:
        step.note(
            f"the profile allows POST /groups at mcpttp.9 (≤ {REDUCED_PRIORITY}); alice is granted: accepted"
        )
        step.note("a request outside the profile, and one above its priority, are refused here:")
        for path, priority, cause in (
            ("/groups/fire-1/history", None, "RESOURCE_NOT_AUTHORIZED"),
            ("/groups", "mcpttp.11", "PRIORITY_NOT_AUTHORIZED"),
        ):
            refused = await _via_sas(system, app, gm, path, priority)
            step.exchange(refused)
            step.check(
                refused.status == 403 and (refused.response_json or {}).get("cause") == cause, f"403 {cause}"
            )
    instance = request.response_headers.get("x-sample-instance", "")
    async with n.step(3, "Authorized: the SAS forwards the request to a GM application server") as step:
        step.note(
            f"to {instance or '?'} of pool GM/sample-gm, as alice (the SAS asserts the MC user it verified)"
        )
        step.check(instance.startswith("gm-"), "a GM instance answered")
    async with n.step(4, "The GM application server answers the SAS") as step:
        body = request.response_json or {}
        step.note(f"{request.status}: group {body.get('groupId')} created, owner {body.get('owner')}")
        step.check(request.status == 201 and body.get("owner") == ALICE, "the group created for alice")
    async with n.step(5, "The SAS forwards the response, indicating the priority it applied") as step:
        step.received(request)
        applied = request.response_headers.get("resource-priority")
        step.check(applied == "mcpttp.9", f"Resource-Priority: mcpttp.9 indicated back, not {applied}")
    return instance


async def failover(
    system: DemoSystem, n: Narrator, console: Console, gm: ApplicationProfile, dead: str
) -> None:
    app = console.app
    n.procedure("10.X.5", "The same access after an application server fails", "seed figure 10.X.5-1")
    survivor = "gm-2" if dead == "gm-1" else "gm-1"
    await system.samples.kill(dead)
    async with n.step(
        1, f"{dead} has crashed (no deregistration); the application sends GET /groups"
    ) as step:
        answers = [await _via_sas(system, app, gm, "/groups") for _ in range(3)]
        request = answers[0]
        step.sent(request)
    async with n.step(2, "The SAS checks the application's profile and alice's authorization") as step:
        step.note("accepted, as before")
    async with n.step(
        3, f"The SAS forwards it to the GM pool: {dead} refuses, the idempotent request goes to {survivor}"
    ) as step:
        served = [a.response_headers.get("x-sample-instance") for a in answers]
        step.note(f"3 requests, answered by {', '.join(str(s) for s in served)}")
        step.check(served == [survivor] * 3, f"every request answered by {survivor}")
    async with n.step(4, f"{survivor} answers the SAS") as step:
        groups = [g.get("groupId") for g in (request.response_json or {}).get("groups", [])]
        step.note(f"alice's groups: {', '.join(groups) or 'none'} (the pool shares its data)")
        step.check(groups == ["fire-1"], "the group created before")
    async with n.step(5, "The SAS forwards the response: no failed request") as step:
        step.received(request)
        step.check([a.status for a in answers] == [200] * 3, "200 every time")
