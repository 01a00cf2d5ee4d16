"""A split deployment on real processes: the IdM and the registry in one (``asgate serve idm
registry``), each service access server in another (``asgate serve access``, ``sas_id``
``access-1``, ``access-2``...) with a data directory and a database of its own, sharing only the
signing keys (docs/operations.md: "share the keys directory"), registering itself with the registry
(no static push URLs); and a recording backend registered as the service GM/recorder.

    async with split_deployment(tmp_path, access_servers=2) as split:
        await split.add_app("console-1")
        profile = await split.authorize("console-1")
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from asgate.idm.keys import KeyRing
from asgate.idm.service import TokenService
from tests.access.system import ALICE, bearer, registration_for
from tests.live import ASGATE, LiveServer, free_port, server_env, wait_healthy
from tests.receiver import Receiver, running_receiver

ADMIN = "/mcx-registry-admin/v1"
STARTUP = 60.0  # seconds; the processes start together, on a machine that may be busy


@dataclass
class Split:
    registry: LiveServer
    access: list[LiveServer]  # control planes: the CSC-15 server, /healthz
    data_planes: list[str]  # where applications call, http://127.0.0.1:PORT
    recorder: Receiver
    tokens: TokenService
    http: httpx.AsyncClient

    def token(self, client_id: str, scope: str) -> str:
        """A client's access token as the IdM issues it (client credentials)."""
        return self.tokens.issue(subject=client_id, client_id=client_id, scopes=[scope])[0]

    def user_token(self, app: str, user: str = ALICE) -> str:
        """An MC user's access token as the IdM issues it after a login for ``app`` (TS 33.180 B.2.2)."""
        extra = {"mcptt_id": user, "azp": app}
        scopes = ["openid", "3gpp:mc:ptt_service"]
        return self.tokens.issue(subject=f"user-{user}", client_id=app, scopes=scopes, extra=extra)[0]

    async def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = bearer(self.token("ops", "mcx-registry-admin"))
        return await self.http.request(method, f"{self.registry.url}{ADMIN}{path}", headers=headers, **kw)

    async def add_app(self, app: str, **spec: Any) -> None:
        """The administrator allows ``app`` the recorder's service (GM) and grants alice for it."""
        body = {"allowedServices": [{"serviceType": "GM"}], "maxPriority": "mcpttp.10", **spec}
        assert (await self.admin("PUT", f"/apps/{app}", json=body)).status_code == 201
        assert (await self.admin("PUT", f"/grants/{app}/{ALICE}", json={})).status_code == 201

    async def authorize(self, app: str) -> dict[str, Any]:
        """Seed 10.X.3: the profile for GM/recorder, once every access server routes it (CSC-15)."""
        profile = await self.authorize_without_waiting(app)
        async with asyncio.timeout(15):
            for server in self.access:
                while profile["version"] != (await self.held(server)).get(profile["appProfileId"]):
                    await asyncio.sleep(0.05)
        return profile

    async def authorize_without_waiting(self, app: str) -> dict[str, Any]:
        """Seed 10.X.3: the profile for GM/recorder, as the registry answers."""
        body = {
            "mcServiceId": ALICE,
            "requestType": "AUTHORIZE",
            "servicesCapabilitiesInformation": [{"serviceType": "GM", "serviceName": "recorder"}],
        }
        response = await self.http.post(
            f"{self.registry.url}/mcx-registry/v1/authorizations",
            json=body,
            headers=bearer(self.token(app, "mcx-registry")),
        )
        assert response.status_code == 200, response.text
        profile: dict[str, Any] = response.json()["applicationProfiles"][0]
        return profile

    async def access_servers(self) -> dict[str, dict[str, Any]]:
        """The registry's view of the access servers (the administrator's): sasId -> entry."""
        response = await self.admin("GET", "/access-servers")
        assert response.status_code == 200, response.text
        return {i["sasId"]: i for i in response.json()["items"] if "sasId" in i}

    async def wait_registered(self, *names: str, live: bool = True, timeout: float = 30) -> None:
        """Until the registry sees each access server ``names`` (default: all) live (or not)."""
        wanted = set(names or (f"access-{i + 1}" for i in range(len(self.access))))
        async with asyncio.timeout(timeout):
            while True:
                seen = await self.access_servers()
                if all(n in seen and seen[n]["live"] is live for n in wanted):
                    return
                await asyncio.sleep(0.1)

    async def held(self, server: LiveServer) -> dict[str, int]:
        """The profiles an access server holds: id -> version."""
        state = await self.http.get(
            f"{server.url}/mcx-access-profiles/v1/state",
            headers=bearer(self.token("ops", "mcx-access-profiles")),
        )
        return {p["appProfileId"]: p["version"] for p in state.json()["appProfiles"]}


@contextlib.asynccontextmanager
async def split_deployment(
    tmp_path: Path,
    access_servers: int = 1,
    *,
    registry_settings: dict[str, str] | None = None,
    **access_settings: str,
) -> AsyncIterator[Split]:
    """The access servers register themselves with the registry (issue 10): no static push URLs."""
    registry_dir = tmp_path / "registry"
    keyring = KeyRing(registry_dir / "keys")
    keyring.ensure()
    registry_url = f"http://127.0.0.1:{free_port()}"
    controls = [free_port() for _ in range(access_servers)]
    data_planes = [f"http://127.0.0.1:{free_port()}" for _ in range(access_servers)]
    access_dirs = [tmp_path / f"access-{i + 1}" for i in range(access_servers)]
    for data_dir in access_dirs:
        shutil.copytree(keyring.directory, data_dir / "keys")
    commands: list[tuple[Path, tuple[str, ...], int, dict[str, str]]] = [
        (data_dir, ("serve", "access"), control, {
            "issuer": registry_url,
            "sas_registry_url": registry_url,
            "sas_listen": data_plane.removeprefix("http://"),
            "sas_id": data_dir.name,
            "sas_refusal_hold": "0",
            **access_settings,
        })
        for data_dir, control, data_plane in zip(access_dirs, controls, data_planes, strict=True)
    ]  # fmt: skip
    commands.append(
        (registry_dir, ("serve", "idm", "registry"), int(registry_url.rsplit(":", 1)[1]), {
            "registry_sas_url": data_planes[0],
            "registry_retry_base": "0.05",
            "registry_retry_max": "0.5",
            # The access servers register their control planes, on loopback here.
            "outbound_allow_loopback": "true",
            **(registry_settings or {}),
        })
    )  # fmt: skip
    async with running_receiver() as recorder, httpx.AsyncClient(timeout=10) as http:
        with _processes(commands) as servers:
            tokens = TokenService(None, keyring, issuer=registry_url, audience="asgate", ttl=600)  # type: ignore[arg-type]
            split = Split(servers[-1], servers[:-1], data_planes, recorder, tokens, http)
            await split.wait_registered()
            await _register_recorder(split)
            yield split


@contextlib.contextmanager
def _processes(
    commands: list[tuple[Path, tuple[str, ...], int, dict[str, str]]],
) -> Iterator[list[LiveServer]]:
    """Start every ``asgate COMMAND`` at once, wait until all are healthy; SIGTERM them at the end."""
    servers: list[LiveServer] = []
    try:
        for data_dir, command, port, settings in commands:
            env = server_env(data_dir, None, listen=f"127.0.0.1:{port}", **settings)
            log = data_dir / f"server-{port}.log"
            argv = (*ASGATE, *command)
            with log.open("wb") as out:
                proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
            servers.append(LiveServer(f"http://127.0.0.1:{port}", env, proc, log, argv))
        for server in servers:
            wait_healthy(server.url, server.proc, server.log, STARTUP)
        yield servers
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
        for server in servers:
            try:
                server.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()


async def _register_recorder(split: Split) -> None:
    registration = registration_for(split.recorder)
    # Issue 8 item 1: the recorder's client serves its pool; its description is approved once in.
    add = ("clients", "add", "recorder", "--scope", "mcx-service-registration", "--pool", "GM/recorder")
    await asyncio.to_thread(split.registry.cli, *add)
    response = await split.http.post(
        f"{split.registry.url}/mcx-service-registration/v1/services",
        json=registration.dump(),
        headers=bearer(split.token("recorder", "mcx-service-registration")),
    )
    assert response.status_code == 201, response.text
    await asyncio.to_thread(split.registry.cli, "pools", "approve", "GM/recorder")
