"""Several registry processes over one database (issue 10 §2), each here a Runtime of its own (its
own engine, group committer, roles and loops) in this test process, over a real database:

- a change committed through process A reaches an application whose WebSocket is held by process B
  at once (signalled through PostgreSQL), not at B's next poll;
- two notifiers delivering from one outbox send each notification once; one that dies with
  notifications leased leaves them to the other once the lease is over;
- two processes sweeping liveness at once apply each transition once.

The first test runs again with two real ``asgate serve registry`` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from starlette.types import ASGIApp

from asgate.kernel.background import Background
from asgate.kernel.settings import Settings
from asgate.registry.hub import NotificationHub
from asgate.registry.lifecycle import Liveness
from asgate.registry.notify import Notifier
from asgate.registry.scripts import Context, Scripts
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from asgate.system.serving import _Server
from tests.conftest import Mint, bearer
from tests.live import ASGATE, free_port, server_env, wait_healthy
from tests.receiver import Receiver
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
POLL = 30.0  # every loop's poll: whatever arrives sooner was woken


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        registry_poll_interval=POLL,
        registry_sweep_interval=60,  # the tests sweep themselves
        registry_sas_check_interval=POLL,
        registry_sas_ack_wait=0,
        registry_removal_grace=60,
    )


@contextlib.asynccontextmanager
async def on_socket(app: ASGIApp) -> AsyncIterator[str]:
    """``app`` on a real loopback socket (httpx's ASGI transport has no WebSocket); its URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def rt_b(settings: Settings, rt: Runtime) -> AsyncIterator[Runtime]:
    """A second process's runtime over the same database and keys as ``rt`` (process A)."""
    async with Runtime.open(settings) as runtime:
        yield runtime


@pytest.fixture
def tokens(mint: Mint, service_clients: None) -> dict[str, str]:
    return {client_id: mint(client_id, scope) for client_id, scope in SCOPES.items()}


async def receive(ws: websockets.ClientConnection, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        return dict(json.loads(await ws.recv()))


async def test_a_change_through_one_process_reaches_a_websocket_held_by_another_at_once(
    backend: str, http: httpx.AsyncClient, rt: Runtime, rt_b: Runtime, tokens: dict[str, str]
) -> None:
    if backend == "sqlite":
        pytest.skip("one process per SQLite database: its own writes wake it (docs/operations.md)")
    # Process A (``http``) takes every request; process B only holds console-1's WebSocket.
    assert (await register(http, tokens["gms-1"], gm_registration())).status_code == 201
    assert (await admin_app(http, tokens["ops"], "console-1", maxPriority="mcpttp.10")).status_code == 201
    assert (await admin_grant(http, tokens["ops"], "console-1", ALICE)).status_code == 201
    body = {
        "mcServiceId": ALICE,
        "requestType": "AUTHORIZE",
        "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
        "websocketNotification": True,
    }
    authorized = await http.post(f"{REGISTRY}/authorizations", json=body, headers=bearer(tokens["console-1"]))
    assert authorized.status_code == 200, authorized.text
    (profile,) = authorized.json()["applicationProfiles"]

    async with control_app(rt_b) as app_b, on_socket(app_b) as b:
        url = f"ws://{b}{REGISTRY}/notifications"
        async with websockets.connect(url, additional_headers=bearer(tokens["console-1"])) as ws:
            await asyncio.sleep(0.3)  # B's notifier ran its round on connect (nothing due yet)
            for version in (profile["version"] + 1, profile["version"] + 2):
                started = time.monotonic()
                priority = f"mcpttp.{10 - version}"
                edit = await http.put(
                    f"{ADMIN}/app-profiles/{profile['appProfileId']}",
                    json={"maxPriority": priority},
                    headers=bearer(tokens["ops"]),
                )
                assert edit.status_code == 200, edit.text
                note = await receive(ws, timeout=5)
                assert time.monotonic() - started < 1.0  # woken, not polled (every poll is 30 s)
                assert (note["appProfileId"], note["version"]) == (profile["appProfileId"], version)
                await ws.send(json.dumps({"ack": note["notificationId"]}))
                async with asyncio.timeout(5):
                    while (await _state(rt, note["notificationId"])) != "DELIVERED":
                        await asyncio.sleep(0.02)


async def _state(rt: Runtime, notification_id: int) -> str:
    (row,) = [d for d in await rt.store.registry.deliveries(limit=1000) if d.id == notification_id]
    return row.state


def _notifier(rt: Runtime, lease: float = 30.0) -> Notifier:
    return Notifier(
        rt.store,
        rt.uri_policy,
        rt.callback_session,
        NotificationHub(),
        "http://registry.test",
        concurrency=16,
        lease=lease,
        retry_base=0.05,
        retry_max=0.2,
    )


@contextlib.asynccontextmanager
async def delivering(*notifiers: Notifier, poll: float = 0.05) -> AsyncIterator[None]:
    background = Background()
    for i, notifier in enumerate(notifiers):
        background.spawn(notifier.run(background, poll), f"notifier-{i}")
    try:
        yield
    finally:
        await background.stop()


async def test_two_notifiers_deliver_each_notification_exactly_once(
    rt: Runtime, rt_b: Runtime, receiver: Receiver
) -> None:
    count = 200
    queued = [(f"app-{i % 5}", f"p{i}", 1, receiver.url) for i in range(count)]
    now = time.time()
    await rt.store.write(lambda tx: tx.outbox.enqueue_many(queued, now))
    a, b = _notifier(rt), _notifier(rt_b)

    async with delivering(a, b, a, b):  # two loops per process too
        await receiver.wait_for(lambda got: len(got) >= count, timeout=30)
        await asyncio.sleep(0.3)  # a duplicate would arrive now

    ids = [body["notificationId"] for body in receiver.received]
    assert len(ids) == len(set(ids)) == count
    delivered = await rt.store.registry.deliveries(state="DELIVERED", limit=1000)
    assert len(delivered) == count and all(d.attempts == 1 for d in delivered)


async def test_notifications_a_dead_process_leased_are_delivered_by_another_after_the_lease(
    rt: Runtime, rt_b: Runtime, receiver: Receiver
) -> None:
    lease = 1.0
    queued = [("app", f"p{i}", 1, receiver.url) for i in range(3)]
    now = time.time()
    await rt.store.write(lambda tx: tx.outbox.enqueue_many(queued, now))
    # Process A leases them for delivery and dies: no attempt's outcome is ever written.
    leased = await rt.store.write(lambda tx: tx.outbox.claim_due(now, lease, 10, None))
    assert len(leased) == 3
    await rt.store.close()

    async with delivering(_notifier(rt_b)):
        await receiver.wait_for(lambda got: len(got) >= 3, timeout=10)
        arrived = time.time()
        await asyncio.sleep(0.3)
    assert arrived >= now + lease  # not while A's lease held
    assert sorted(body["notificationId"] for body in receiver.received) == sorted(d.id for d in leased)


async def test_two_processes_sweeping_at_once_apply_each_transition_once(
    http: httpx.AsyncClient, rt: Runtime, rt_b: Runtime, tokens: dict[str, str]
) -> None:
    pools = ("gms", "gms-west", "other", "sds")
    for i in range(12):
        registration = gm_registration(port=9100 + i, name=pools[i % 4])  # heartbeats every 10 s
        assert (await register(http, tokens["gms-1"], registration)).status_code == 201
    registered = time.time()
    before = {c.seq for c in await rt.store.registry.changes(0)}

    scripts = Scripts(Context(liveness=Liveness(3, 60), sas_url="http://sas", api_root="http://t"))

    async def sweep_everywhere(now: float) -> int:
        sweeps = [
            runtime.store.write(lambda tx: scripts.sweep(tx, now=now))
            for runtime in (rt, rt_b, rt, rt_b, rt, rt_b)
        ]
        return sum(await asyncio.gather(*sweeps))

    # Three missed heartbeats suspend an instance; 60 s later (registry_removal_grace) it is removed.
    assert await sweep_everywhere(registered + 31) == 4  # suspended: each pool changed once
    assert await sweep_everywhere(registered + 31) == 0
    assert await sweep_everywhere(registered + 200) == 4  # removed

    audit = await rt.store.audit.scan(actor="registry")
    actions = sorted(e.action for e in audit if e.action in ("service.suspend", "service.remove"))
    assert actions == ["service.remove"] * 12 + ["service.suspend"] * 12
    pool_changes = [c for c in await rt.store.registry.changes(0) if c.seq not in before]
    assert sorted(c.key for c in pool_changes if c.kind == "service-pool") == sorted(
        [f"GM/{p}" for p in pools] * 2
    )
    assert await rt.store.registry.instances() == []


@contextlib.contextmanager
def registry_process(data_dir: Path, database: dict[str, Any], **settings: str) -> Iterator[str]:
    """``asgate serve registry`` on a free port; its URL."""
    port = free_port()
    env = server_env(data_dir, database, listen=f"127.0.0.1:{port}", **settings)
    log = data_dir / f"registry-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*ASGATE, "serve", "registry"], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log, timeout=60)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_two_real_processes_a_change_through_one_reaches_a_websocket_on_the_other_at_once(
    backend: str, database: dict[str, Any], settings: Settings, rt: Runtime, tokens: dict[str, str]
) -> None:
    if backend == "sqlite":
        pytest.skip("one process per SQLite database")
    # Both processes share the test's keys (data_dir) and issuer, so the minted tokens are good.
    same = {
        "issuer": settings.token_issuer,
        "registry_poll_interval": str(POLL),
        "registry_sas_ack_wait": "0",
    }
    with (
        registry_process(settings.data_dir, database, **same) as a,
        registry_process(settings.data_dir, database, **same) as b,
    ):
        async with httpx.AsyncClient(base_url=a, timeout=10) as http:
            assert (await register(http, tokens["gms-1"], gm_registration())).status_code == 201
            assert (await admin_app(http, tokens["ops"], "console-1")).status_code == 201
            assert (await admin_grant(http, tokens["ops"], "console-1", ALICE)).status_code == 201
            body = {
                "mcServiceId": ALICE,
                "requestType": "AUTHORIZE",
                "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
                "websocketNotification": True,
            }
            authorized = await http.post(
                f"{REGISTRY}/authorizations", json=body, headers=bearer(tokens["console-1"])
            )
            assert authorized.status_code == 200, authorized.text
            (profile,) = authorized.json()["applicationProfiles"]
            url = f"{b.replace('http', 'ws', 1)}{REGISTRY}/notifications"
            async with websockets.connect(url, additional_headers=bearer(tokens["console-1"])) as ws:
                await asyncio.sleep(0.3)
                started = time.monotonic()
                edit = await http.put(
                    f"{ADMIN}/app-profiles/{profile['appProfileId']}",
                    json={"maxPriority": "mcpttp.7"},
                    headers=bearer(tokens["ops"]),
                )
                assert edit.status_code == 200, edit.text
                note = await receive(ws, timeout=5)
                assert time.monotonic() - started < 1.0  # woken, not polled (every poll is 30 s)
                assert (note["appProfileId"], note["version"]) == (
                    profile["appProfileId"],
                    profile["version"] + 1,
                )
                await ws.send(json.dumps({"ack": note["notificationId"]}))
                async with asyncio.timeout(5):
                    while (await _state(rt, note["notificationId"])) != "DELIVERED":
                        await asyncio.sleep(0.05)
