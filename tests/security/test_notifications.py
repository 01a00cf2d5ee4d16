"""Boundary: external application -> registry (CSC-14 notifications, seed 10.X.4 step 3).

A notification counts as delivered only when the application it was sent to acknowledges it. Another
application's ``{"ack": id}`` on its own WebSocket is answered with an error frame, changes nothing in
the outbox and is audited; the outbox itself (list, retry) is the administrator's only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from starlette.types import ASGIApp

from asgate.kernel.settings import Settings
from asgate.registry.hub import MAX_REFUSED_ACKS
from asgate.store.registry import Delivery
from asgate.system.runtime import Runtime
from asgate.system.serving import _Server
from tests.conftest import Mint, bearer
from tests.live import free_port
from tests.registry.conftest import (
    ADMIN,
    REGISTRY,
    SCOPES,
    admin_app,
    admin_grant,
    gm_registration,
    register,
)

ALICE = "alice@mc.example"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # A short ack timeout and fast retries: an unacknowledged notification comes back within a second.
    return make_settings(registry_notify_timeout=0.5, registry_retry_base=0.05, registry_retry_max=0.2)


@pytest.fixture
async def ws_url(app: ASGIApp) -> AsyncIterator[str]:
    """The in-process app on a real socket (httpx's ASGI transport has no WebSocket)."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}{REGISTRY}/notifications"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def tokens(mint: Mint, service_clients: None) -> dict[str, str]:
    return {client_id: mint(client_id, scope) for client_id, scope in SCOPES.items()}


@pytest.fixture
async def world(http: httpx.AsyncClient, tokens: dict[str, str]) -> dict[str, str]:
    """A GM pool; console-1 and console-2 both allowed GM and both granted alice."""
    assert (await register(http, tokens["gms-1"], gm_registration())).status_code == 201
    for app_id in ("console-1", "console-2"):
        assert (await admin_app(http, tokens["ops"], app_id, maxPriority="mcpttp.10")).status_code == 201
        assert (await admin_grant(http, tokens["ops"], app_id, ALICE)).status_code == 201
    return tokens


@contextlib.asynccontextmanager
async def socket_of(url: str, token: str) -> AsyncIterator[websockets.ClientConnection]:
    async with websockets.connect(url, additional_headers=bearer(token)) as ws:
        yield ws


async def receive(ws: websockets.ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        return dict(json.loads(await ws.recv()))


async def a_notification_for_console_1(http: httpx.AsyncClient, world: dict[str, str]) -> str:
    """console-1 authorizes (WebSocket notifications); the administrator then edits its profile."""
    body = {
        "mcServiceId": ALICE,
        "requestType": "AUTHORIZE",
        "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
        "websocketNotification": True,
    }
    authorized = await http.post(f"{REGISTRY}/authorizations", json=body, headers=bearer(world["console-1"]))
    assert authorized.status_code == 200, authorized.text
    (profile,) = authorized.json()["applicationProfiles"]
    profile_id = str(profile["appProfileId"])
    edit = await http.put(
        f"{ADMIN}/app-profiles/{profile_id}", json={"maxPriority": "mcpttp.9"}, headers=bearer(world["ops"])
    )
    assert edit.status_code == 200, edit.text
    return profile_id


async def outbox_row(rt: Runtime, notification_id: int) -> Delivery:
    (row,) = [d for d in await rt.store.registry.deliveries(app_id="console-1") if d.id == notification_id]
    return row


async def test_an_application_cannot_acknowledge_another_applications_notification(
    http: httpx.AsyncClient, world: dict[str, str], ws_url: str, rt: Runtime
) -> None:
    async with (
        socket_of(ws_url, world["console-1"]) as victim,
        socket_of(ws_url, world["console-2"]) as thief,
    ):
        profile_id = await a_notification_for_console_1(http, world)
        note = await receive(victim)
        assert note["appProfileId"] == profile_id
        notification_id = int(note["notificationId"])

        # While the registry waits for console-1's ack, console-2 acknowledges it instead.
        await thief.send(json.dumps({"ack": notification_id}))
        frame = await receive(thief)
        assert frame["problem"]["status"] == 404
        assert frame["problem"]["cause"] == "CONTEXT_NOT_FOUND"
        assert str(notification_id) not in frame["problem"]["detail"]  # nothing said about console-1

        # It did not count: the registry sends the notification to console-1 again.
        again = await receive(victim)
        assert again["notificationId"] == notification_id
        row = await outbox_row(rt, notification_id)
        assert (row.state, row.last_error) == ("PENDING", "no acknowledgement on the WebSocket")

        # Not in flight any more (between attempts): refused all the same, from the outbox's owner.
        await thief.send(json.dumps({"ack": notification_id}))
        assert (await receive(thief))["problem"]["cause"] == "CONTEXT_NOT_FOUND"
        assert (await outbox_row(rt, notification_id)).state == "PENDING"

        # Only console-1's own ack delivers it.
        while (note := await receive(victim))["notificationId"] != notification_id:
            pass
        await victim.send(json.dumps({"ack": notification_id}))
        async with asyncio.timeout(10):
            while (await outbox_row(rt, notification_id)).state != "DELIVERED":
                await asyncio.sleep(0.05)

    audit = await rt.store.audit.scan(actor="console-2", action="notification.ack")
    assert len(audit) == 2
    assert {(e.resource, e.outcome) for e in audit} == {(f"notification/{notification_id}", "denied")}
    assert all(e.reason == "the notification was sent to another application" for e in audit)


async def test_malformed_acknowledgements_get_an_error_frame_and_change_nothing(
    world: dict[str, str], ws_url: str, rt: Runtime
) -> None:
    async with socket_of(ws_url, world["console-2"]) as ws:
        for ack in (0, -1, 2**63, 2**80, "1", 1.5, True, None, [1], {"id": 1}, 123456789):
            await ws.send(json.dumps({"ack": ack}))
            frame = await receive(ws)  # the socket stays usable: every probe is answered
            assert (frame["problem"]["status"], frame["problem"]["cause"]) == (404, "CONTEXT_NOT_FOUND")
    assert await rt.store.registry.deliveries() == []
    assert await rt.store.audit.scan(actor="console-2", action="notification.ack") == []


async def test_a_socket_guessing_acknowledgements_is_closed(world: dict[str, str], ws_url: str) -> None:
    async with socket_of(ws_url, world["console-2"]) as ws:
        for guess in range(1, MAX_REFUSED_ACKS + 1):
            await ws.send(json.dumps({"ack": guess}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                assert "problem" in await receive(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_the_outbox_is_not_an_applications_to_list_or_retry(
    http: httpx.AsyncClient, world: dict[str, str], rt: Runtime
) -> None:
    await a_notification_for_console_1(http, world)
    (pending,) = await rt.store.registry.deliveries(app_id="console-1")
    for app_id in ("console-1", "console-2"):
        token = world[app_id]
        listed = await http.get(f"{ADMIN}/outbox", headers=bearer(token))
        retried = await http.post(f"{ADMIN}/outbox/{pending.id}/retry", headers=bearer(token))
        assert (listed.status_code, retried.status_code) == (403, 403)
        assert listed.json()["cause"] == retried.json()["cause"] == "INSUFFICIENT_SCOPE"
    (after,) = await rt.store.registry.deliveries(app_id="console-1")
    assert (after.attempts, after.next_attempt_at) == (pending.attempts, pending.next_attempt_at)
