"""The demo's own asgate, in this process: every role on a free port (never the default ones, so
it runs beside ``make run``), SQLite in a temporary data directory, the sample MC services
registered through their agents, and the parties' clients provisioned as an administrator would.

The embedded servers get a recording HTTP client, so the demo also shows what the registry sends
by itself: the CSC-15 updates to the access server and the notifications to the application.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread
import httpx

from asgate.client import ClientCredentials
from asgate.demo.record import Journal
from asgate.domain.idm import Client, User
from asgate.idm.internal import InternalTokens
from asgate.idm.passwords import generate_secret, hash_secret
from asgate.kernel.settings import Settings
from asgate.samples import DEFAULT_SAMPLES, SamplesHandle, run_samples
from asgate.samples.attached import approve_sample_interfaces, sample_pools
from asgate.store.ids import new_id
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from asgate.system.serving import _Server, server_config

ALICE = "alice@mc.example"  # alice's MCPTT ID: her MC service ID
APP = "console-1"  # the external application: a dispatch console
AS_CLIENT = "as-1"  # the Application Server of the MSGin5G procedures
OPS = "ops"  # the administrator's client
REDIRECT = "http://127.0.0.1/callback"  # any loopback port (RFC 8252 7.3)
_CLIENTS = {
    AS_CLIENT: (("msgs-asregistration",), ("AS1",), ()),
    APP: (("mcx-registry", "3gpp:mc:ptt_service"), (), (REDIRECT,)),
    "samples": (("mcx-service-registration",), (), ()),  # and the samples' pools (below)
    OPS: (("mcx-registry-admin", "msgs-admin"), (), ()),
}


@dataclass
class DemoSystem:
    settings: Settings
    rt: Runtime
    journal: Journal
    samples: SamplesHandle
    secrets: dict[str, str]  # client id -> secret
    alice_password: str

    @property
    def url(self) -> str:
        """The control plane: IdM, MSGin5G Server, service registry server."""
        return self.settings.public_root

    @property
    def sas_url(self) -> str:
        return f"http://{self.settings.sas_listen}"

    def credentials(self, client_id: str, scope: str) -> ClientCredentials:
        return ClientCredentials(f"{self.url}/oauth2/token", client_id, self.secrets[client_id], scope)

    def client(self, actor: str) -> httpx.AsyncClient:
        """An HTTP client whose exchanges the demo shows under ``actor``."""
        return httpx.AsyncClient(transport=self.journal.transport(actor), timeout=10.0)

    async def sas_state(self) -> dict[str, object]:
        """What the access server holds (CSC-15 state), read without being shown."""
        tokens = InternalTokens(
            self.rt.keyring,
            issuer=self.settings.token_issuer,
            audience=self.settings.token_audience,
            subject="asgate-demo",
            scope="mcx-access-profiles",
        )
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.get(
                f"{self.url}/mcx-access-profiles/v1/state",
                headers={"Authorization": f"Bearer {await tokens.token(http)}"},
            )
        response.raise_for_status()
        state: dict[str, object] = response.json()
        return state


def _server_actor(request: httpx.Request) -> str:
    """Who sent a request through the embedded servers' shared client."""
    if request.url.path.startswith("/mcx-registry-sync/"):
        return "service access server"
    return "service registry server"


def _bound(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


async def _provision(rt: Runtime) -> tuple[dict[str, str], str]:
    """The clients and alice, straight into the store as ``asgate clients|users add`` would."""
    now = datetime.now(UTC)
    secrets = {client_id: generate_secret() for client_id in _CLIENTS}
    for client_id, (scopes, as_svc_ids, redirects) in _CLIENTS.items():
        secret_hash = await anyio.to_thread.run_sync(hash_secret, secrets[client_id])
        client = Client(
            client_id=client_id,
            secret_hash=secret_hash,
            scopes=scopes,
            as_svc_ids=as_svc_ids,
            redirect_uris=redirects,
            # Issue 8 item 1: the sample services' client serves exactly the samples' pools.
            service_pools=tuple(f"{t}/{n}" for t, n in sample_pools(DEFAULT_SAMPLES))
            if client_id == "samples"
            else (),
            created_at=now,
            updated_at=now,
        )
        await rt.store.write(lambda tx: tx.clients.add(client))  # noqa: B023 - awaited at once
    # ...and their descriptions approved, as the administrator would before they register.
    await approve_sample_interfaces(rt, DEFAULT_SAMPLES, "asgate demo")
    password = generate_secret()
    alice = User(
        user_id=new_id(),
        username="alice",
        password_hash=await anyio.to_thread.run_sync(hash_secret, password),
        display_name="Alice, dispatcher",
        mcptt_id=ALICE,
        created_at=now,
        updated_at=now,
    )
    await rt.store.write(lambda tx: tx.users.add(alice))
    return secrets, password


@contextlib.asynccontextmanager
async def embedded_asgate(journal: Journal) -> AsyncIterator[DemoSystem]:
    """Start it all; on exit the samples deregister and everything stops."""
    with tempfile.TemporaryDirectory(prefix="asgate-demo-") as tmp:
        control, data_plane = _bound(), _bound()
        settings = Settings.isolated(
            data_dir=Path(tmp),
            database_url=f"sqlite+aiosqlite:///{Path(tmp) / 'asgate.db'}",
            listen=f"127.0.0.1:{control.getsockname()[1]}",
            sas_listen=f"127.0.0.1:{data_plane.getsockname()[1]}",
            log_level="error",
            sqlite_synchronous="NORMAL",  # a throwaway database
            registry_missed_heartbeats=2,
            registry_retry_base=0.05,
            registry_retry_max=1.0,
            # The samples and the application's listener run on 127.0.0.1: allowed here only.
            outbound_allow_loopback=True,
            instance_allow_loopback=True,
        )
        data_plane.close()  # the access role binds it itself, a moment later
        async with Runtime.open(settings) as rt:
            # No idle connections kept: each notification's connection ends with its answer, so the
            # application's listener has none open when it stops.
            recording = journal.transport(_server_actor, keep_alive=False)
            own, rt.http = rt.http, httpx.AsyncClient(transport=recording, timeout=10.0)
            rt.callback_traces.append(journal.trace_config("service registry server"))
            rt.callback_keep_alive = False
            try:
                async with control_app(rt) as app:
                    server = _Server(server_config(app, settings.listen, settings))
                    serving = asyncio.create_task(server.serve(sockets=[control]))
                    try:
                        while not server.started:
                            if serving.done():
                                serving.result()
                                raise RuntimeError("the embedded control plane did not start")
                            await asyncio.sleep(0.01)
                        async with _with_samples(rt, settings, journal) as system:
                            yield system
                    finally:
                        server.should_exit = True
                        await serving
            finally:
                await rt.http.aclose()
                rt.http = own
                control.close()


@contextlib.asynccontextmanager
async def _with_samples(rt: Runtime, settings: Settings, journal: Journal) -> AsyncIterator[DemoSystem]:
    secrets, password = await _provision(rt)
    credentials = ClientCredentials(
        f"{settings.public_root}/oauth2/token", "samples", secrets["samples"], "mcx-service-registration"
    )
    samples = await run_samples(
        settings.public_root,
        credentials,
        DEFAULT_SAMPLES,
        base_port=0,
        heartbeat_period=1,
        agent_options={"sas_issuer": settings.sas_issuer},
    )
    async with samples:
        system = DemoSystem(settings, rt, journal, samples, secrets, password)
        agents = [r.agent for r in samples.instances if r.agent is not None]
        await asyncio.gather(*(agent.wait_registered(15) for agent in agents))
        await _until_pools_reach_the_sas(system, len(samples.instances))
        yield system


async def _until_pools_reach_the_sas(system: DemoSystem, instances: int, timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            pools = (await system.sas_state()).get("servicePools", [])
            if isinstance(pools, list) and sum(len(p.get("instances", [])) for p in pools) >= instances:
                return
            await asyncio.sleep(0.1)
