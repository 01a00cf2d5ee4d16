"""A whole asgate in one test process, on real sockets: the control plane (IdM, registry, CSC-15
server) on an ephemeral port, the access server's data plane on another, the sample MC services
registered through their ServiceAgents, and a recording backend to prove what reaches a service."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn

from asgate.client import ClientCredentials
from asgate.domain.idm import Client
from asgate.domain.registry import ServiceRegistration
from asgate.idm.passwords import hash_secret
from asgate.idm.service import TokenService
from asgate.kernel.settings import Settings
from asgate.samples.attached import approve_sample_interfaces, sample_pools
from asgate.samples.runner import SamplesHandle, run_samples
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from asgate.system.serving import _Server
from tests.live import free_port
from tests.receiver import Receiver, running_receiver

ALICE = "alice@mc.example"
SAMPLES = ["gm", "gm", "mcptt"]
SAMPLE_POOLS = tuple(f"{t}/{n}" for t, n in sample_pools(SAMPLES))  # issue 8 item 1
RECORDER_RESOURCES = [
    {"resourceName": "items", "uri": "/items", "commType": "REQUEST_RESPONSE", "operations": ["GET", "POST"]},
    {
        "resourceName": "item",
        "uri": "/items/{id}",
        "commType": "REQUEST_RESPONSE",
        "operations": ["GET", "PUT"],
    },
]


@dataclass
class System:
    rt: Runtime
    api: str
    sas: str
    sas_port: int
    http: httpx.AsyncClient
    samples: SamplesHandle
    recorder: Receiver
    tokens: TokenService

    def user_token(self, app: str = "console-1", user: str = ALICE, **claims: Any) -> str:
        """An MC user's access token as the IdM issues it after a login (TS 33.180 B.2.2)."""
        extra = {"mcptt_id": user, "azp": app, **claims}
        scopes = ["openid", "3gpp:mc:ptt_service"]
        return self.tokens.issue(subject=f"user-{user}", client_id=app, scopes=scopes, extra=extra)[0]

    def app_token(self, app: str = "console-1", scope: str = "mcx-registry") -> str:
        return self.tokens.issue(subject=app, client_id=app, scopes=[scope])[0]

    async def authorize(
        self, service_type: str, app: str = "console-1", user: str = ALICE, **kw: Any
    ) -> dict[str, Any]:
        """Seed 10.X.3 steps 3-5; returns the profile, once the access server has it (steps 6-7)."""
        body = {
            "mcServiceId": user,
            "requestType": "AUTHORIZE",
            "servicesCapabilitiesInformation": [{"serviceType": service_type, **kw}],
        }
        response = await self.http.post(
            f"{self.api}/mcx-registry/v1/authorizations", json=body, headers=bearer(self.app_token(app))
        )
        assert response.status_code == 200, response.text
        profile: dict[str, Any] = response.json()["applicationProfiles"][0]
        await self.until_routed(profile)
        return profile

    async def until_routed(self, profile: dict[str, Any], timeout: float = 10.0) -> None:
        """Wait until the access server routes the profile (CSC-15 propagation)."""
        async with asyncio.timeout(timeout):
            while True:
                state = await self.http.get(
                    f"{self.api}/mcx-access-profiles/v1/state",
                    headers=bearer(self.app_token("ops", "mcx-access-profiles")),
                )
                ids = {p["appProfileId"]: p["version"] for p in state.json()["appProfiles"]}
                if ids.get(profile["appProfileId"]) == profile["version"]:
                    return
                await asyncio.sleep(0.05)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def raw_request(port: int, head: str) -> tuple[int, str]:
    """One request written byte for byte (no client library normalises it); status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode("latin-1"))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2].decode("latin-1")


async def until(check: Callable[[], Any], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_system(make_settings: Callable[..., Settings], **overrides: Any) -> AsyncIterator[System]:
    api_port, sas_port = free_port(), free_port()
    settings = make_settings(
        listen=f"127.0.0.1:{api_port}",
        sas_listen=f"127.0.0.1:{sas_port}",
        sas_registry_url=None,
        registry_sas_url=f"http://127.0.0.1:{sas_port}",
        registry_missed_heartbeats=2,
        registry_retry_base=0.05,
        sas_upstream_eject_seconds=5.0,
        **overrides,
    )
    async with Runtime.open(settings) as rt, control_app(rt) as app, running_receiver() as recorder:
        server = _Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=api_port, lifespan="off", log_config=None, access_log=False
            )
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(timeout=10.0) as http:
                tokens = TokenService(
                    rt.store.clients,
                    rt.keyring,
                    issuer=settings.token_issuer,
                    audience=settings.token_audience,
                    ttl=600,
                )
                await _provision(rt, http, settings.public_root, tokens, recorder)
                credentials = ClientCredentials(
                    f"{settings.public_root}/oauth2/token",
                    "samples",
                    "samples-secret",
                    "mcx-service-registration",
                )
                async with await run_samples(
                    settings.public_root, credentials, SAMPLES, base_port=0, heartbeat_period=1
                ) as samples:
                    system = System(
                        rt,
                        settings.public_root,
                        f"http://127.0.0.1:{sas_port}",
                        sas_port,
                        http,
                        samples,
                        recorder,
                        tokens,
                    )
                    await until(lambda: _pools_ready(system))
                    yield system
        finally:
            server.should_exit = True
            await serving


async def _provision(
    rt: Runtime, http: httpx.AsyncClient, api: str, tokens: TokenService, recorder: Receiver
) -> None:
    now = datetime.now(UTC)
    for client_id, pools in (("samples", SAMPLE_POOLS), ("recorder", ("GM/recorder",))):
        new = Client(
            client_id=client_id,
            secret_hash=hash_secret(f"{client_id}-secret"),
            scopes=("mcx-service-registration",),
            service_pools=pools,
            created_at=now,
            updated_at=now,
        )
        await rt.store.write(lambda tx: tx.clients.add(new))  # noqa: B023 - awaited at once
    await approve_sample_interfaces(rt, SAMPLES, "tests")
    ops = bearer(tokens.issue(subject="ops", client_id="ops", scopes=["mcx-registry-admin"])[0])
    for app in ("console-1", "console-2"):
        spec = {
            "allowedServices": [{"serviceType": "GM"}, {"serviceType": "MCPTT"}],
            "maxPriority": "mcpttp.10",
        }
        response = await http.put(f"{api}/mcx-registry-admin/v1/apps/{app}", json=spec, headers=ops)
        assert response.status_code == 201, response.text
    assert (
        await http.put(f"{api}/mcx-registry-admin/v1/grants/console-1/{ALICE}", json={}, headers=ops)
    ).status_code == 201
    assert (
        await http.put(f"{api}/mcx-registry-admin/v1/grants/console-2/{ALICE}", json={}, headers=ops)
    ).status_code == 201
    recorder_registration = registration_for(recorder)
    approval = {"versions": [v.dump() for v in recorder_registration.versions or ()]}
    response = await http.put(
        f"{api}/mcx-registry-admin/v1/pools/GM/recorder/interface", json=approval, headers=ops
    )
    assert response.status_code == 200, response.text
    svc = bearer(
        tokens.issue(subject="recorder", client_id="recorder", scopes=["mcx-service-registration"])[0]
    )
    response = await http.post(
        f"{api}/mcx-service-registration/v1/services", json=recorder_registration.dump(), headers=svc
    )
    assert response.status_code == 201, response.text


def registration_for(recorder: Receiver) -> ServiceRegistration:
    """The GM "recorder" service, served by ``recorder`` (its requests arrive under ``/rec``)."""
    port = int(recorder.base.rsplit(":", 1)[1])
    return ServiceRegistration.model_validate(
        {
            "serviceType": "GM",
            "serviceName": "recorder",
            "interfaces": [
                {
                    "referencePoint": "CSC-2",
                    "protocol": "HTTP",
                    "ipv4Addr": "127.0.0.1",
                    "port": port,
                    "apiPrefix": "/rec",
                }
            ],
            "versions": [{"apiVersion": "v1", "resources": RECORDER_RESOURCES}],
            "heartbeatPeriod": 3600,
        }
    )


async def _pools_ready(system: System) -> bool:
    state = await system.http.get(
        f"{system.api}/mcx-access-profiles/v1/state",
        headers=bearer(system.app_token("ops", "mcx-access-profiles")),
    )
    pools = {(p["serviceType"], p["serviceName"]): len(p["instances"]) for p in state.json()["servicePools"]}
    return (
        pools.get(("GM", "sample-gm")) == 2
        and pools.get(("MCPTT", "sample-mcptt")) == 1
        and pools.get(("GM", "recorder")) == 1
    )
