"""Missed heartbeats suspend, then remove an instance, computed from stored deadlines, also across a
restart of the registry; every step is a CSC-15 pool change."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from asgate.kernel.settings import Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests.conftest import bearer
from tests.registry.conftest import REGISTRY, SERVICES, admin_app, admin_grant, gm_registration

FAST = {"registry_missed_heartbeats": 1, "registry_removal_grace": 0.6, "registry_sweep_interval": 0.05}


async def status(http: httpx.AsyncClient, token: str, location: str) -> str | int:
    response = await http.get(location, headers=bearer(token))
    return response.json()["status"] if response.status_code == 200 else response.status_code


async def until(check: Callable[[], Any], expected: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while await check() != expected:
            await asyncio.sleep(0.05)


async def discovered(http: httpx.AsyncClient, token: str) -> list[str]:
    response = await http.get(
        f"{REGISTRY}/service-information", params={"mc-service-id": "alice"}, headers=bearer(token)
    )
    return [s["serviceName"] for s in response.json()["serviceInformation"]]


async def test_missed_heartbeats_suspend_then_remove(
    make_settings: Callable[..., Settings], mint: Any, service_clients: None
) -> None:
    async with Runtime.open(make_settings(**FAST)) as rt, control_app(rt) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            svc, ops, console = (
                mint("gms-1", "mcx-service-registration"),
                mint("ops", "mcx-registry-admin"),
                mint("c", "mcx-registry"),
            )
            await admin_app(http, ops, "c")
            await admin_grant(http, ops, "c", "alice")
            location = (
                await http.post(SERVICES, json=gm_registration(heartbeatPeriod=1), headers=bearer(svc))
            ).headers["location"]
            assert await discovered(http, console) == ["gms"]
            await until(lambda: status(http, svc, location), "SUSPENDED")
            # A suspended instance is not offered (the sweeper refreshes the view just after its commit).
            await until(lambda: discovered(http, console), [])
            assert (await http.put(f"{location}/heartbeat", headers=bearer(svc))).status_code == 204
            assert await status(http, svc, location) == "REGISTERED"
            assert await discovered(http, console) == ["gms"]
            await until(lambda: status(http, svc, location), 404)  # suspended, then removed
            changes = await rt.store.registry.changes(0, kinds=["service-pool"])
            counts = [len(c.payload["instances"]) if c.payload else None for c in changes]
            assert counts == [1, 0, 1, 0, None]  # registered, suspended, resumed, suspended, removed
            actions = [e.action for e in await rt.store.audit.scan() if e.action.startswith("service.")]
            assert actions == [
                "service.register",
                "service.suspend",
                "service.resume",
                "service.suspend",
                "service.remove",
            ]


async def test_liveness_survives_a_restart(
    make_settings: Callable[..., Settings], mint: Any, service_clients: None
) -> None:
    settings = make_settings(**FAST)
    async with Runtime.open(settings) as rt, control_app(rt) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            svc = mint("gms-1", "mcx-service-registration")
            response = await http.post(SERVICES, json=gm_registration(heartbeatPeriod=1), headers=bearer(svc))
            location = response.headers["location"]
    await asyncio.sleep(2.0)  # the registry is down longer than the deadlines
    async with Runtime.open(settings) as rt, control_app(rt) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            svc = mint("gms-1", "mcx-service-registration")
            # The instance could not heartbeat while the registry was down: it gets its period again...
            assert await status(http, svc, location) == "REGISTERED"
            # ...and is then suspended and removed from the stored deadlines, as before the restart.
            await until(lambda: status(http, svc, location), "SUSPENDED")
            await until(lambda: status(http, svc, location), 404)
