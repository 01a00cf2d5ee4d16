"""A live Mission Critical world for external application tests: a real ``asgate up`` (registry,
IdM, service access server on a free port), provisioned by the administrator CLI, with the sample
GM and MCPTT services registered through their agents.

    async with mc_world(tmp_path) as world:
        app = ExternalApplication(world.url, CONSOLE, user=world.login())
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from click.testing import CliRunner, Result

from asgate.cli import main
from asgate.client import ClientCredentials, ScriptedBrowser, UserLogin
from asgate.samples import SamplesHandle, run_samples
from asgate.samples.attached import sample_pools
from tests.live import ASGATE, LiveServer, free_port, live_server, wait_healthy

ALICE = "alice@mc.example"
CONSOLE = ("console-1", "console-1-secret")
USER_SCOPE = "openid 3gpp:mc:ptt_service"
ADMIN = "/mcx-registry-admin/v1"


@dataclass
class World:
    server: LiveServer
    sas_url: str
    samples: SamplesHandle
    sample_names: tuple[str, ...] = ("gm", "mcptt")

    @property
    def url(self) -> str:
        return self.server.url

    def login(self) -> UserLogin:
        """console-1's login for MC users (a confidential client with a loopback redirect)."""
        return UserLogin(self.url, CONSOLE[0], client_secret=CONSOLE[1], scope=USER_SCOPE)

    @staticmethod
    def browser() -> ScriptedBrowser:
        """Alice at a browser, signing in through the real login page."""
        return ScriptedBrowser("alice", "alice-password")

    def cli(self, *args: str, code: int = 0) -> Result:
        """An administrator command in-process, on the server's own store (call it in a thread)."""
        env = {k: v for k, v in self.server.env.items() if k.startswith("ASGATE_")}
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    async def admin(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """The administrator through mcx-registry-admin/v1 (client ``ops``)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            token = await ClientCredentials(
                f"{self.url}/oauth2/token", "ops", "ops-secret", "mcx-registry-admin"
            ).token(http)
            return await http.request(
                method, f"{ADMIN}{path}", headers={"Authorization": f"Bearer {token}"}, **kw
            )

    async def delivered(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0
    ) -> dict[str, Any]:
        """The first delivered notification in the outbox that ``predicate`` accepts."""
        async with asyncio.timeout(timeout):
            while True:
                items = (await self.admin("GET", "/outbox", params={"state": "DELIVERED"})).json()["items"]
                found = [e for e in items if e["kind"] == "notification" and predicate(e)]
                if found:
                    return dict(found[0])
                await asyncio.sleep(0.1)

    def restart(self) -> None:
        """Stop the server (SIGTERM) and start it again on the same port and data."""
        self.server.kill(signal.SIGTERM)
        with self.server.log.open("ab") as out:
            proc = subprocess.Popen(
                [*ASGATE, "up"], env=self.server.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.server.proc = proc
        wait_healthy(self.url, proc, self.server.log)


def provision(world: World) -> None:
    """What the administrator does before the application runs (docs/sdk.md, "Setting up")."""
    world.cli("clients", "add", CONSOLE[0], "--secret", CONSOLE[1], "--scope", "mcx-registry",
              "--scope", "3gpp:mc:ptt_service", "--redirect-uri", "http://127.0.0.1/callback")  # fmt: skip
    pools = [arg for pool in sample_pools(world.sample_names) for arg in ("--pool", "/".join(pool))]
    world.cli(
        "clients", "add", "samples", "--secret", "samples-secret", "--scope", "mcx-service-registration",
        *pools,
    )  # fmt: skip
    world.cli("clients", "add", "ops", "--secret", "ops-secret", "--scope", "mcx-registry-admin")
    world.cli("users", "add", "alice", "--mcptt-id", ALICE, "--password", "alice-password")
    world.cli("apps", "add", CONSOLE[0], "--allow", "GM", "--allow", "MCPTT", "--max-priority", "mcpttp.12")
    world.cli("grants", "add", CONSOLE[0], ALICE)


async def approved_in_view(world: World, pools: int, timeout: float = 10.0) -> None:
    """The CLI approved on the store; wait until the running registry's view (which follows the
    change log, twice a second) describes every pool, as discovery will answer it."""
    async with httpx.AsyncClient(base_url=world.url) as http:
        token = (
            await http.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials", "scope": "mcx-registry"},
                auth=CONSOLE,
            )
        ).json()["access_token"]
        async with asyncio.timeout(timeout):
            while True:
                found = await http.get(
                    "/mcx-registry/v1/service-information",
                    params={"mc-service-id": ALICE},
                    headers={"Authorization": f"Bearer {token}"},
                )
                described = [s for s in found.json().get("serviceInformation", []) if s.get("versions")]
                if len(described) >= pools:
                    return
                await asyncio.sleep(0.1)


@asynccontextmanager
async def mc_world(data_dir: Path, samples: tuple[str, ...] = ("gm", "mcptt")) -> AsyncIterator[World]:
    sas_port = free_port()
    settings = {
        "sas_listen": f"127.0.0.1:{sas_port}",
        "registry_retry_base": "0.05",
        "registry_retry_max": "0.5",
    }
    with live_server(data_dir, None, **settings) as server:
        first = server.proc
        world = World(server, f"http://127.0.0.1:{sas_port}", SamplesHandle(), samples)
        await asyncio.to_thread(provision, world)
        credentials = ClientCredentials(
            f"{server.url}/oauth2/token", "samples", "samples-secret", "mcx-service-registration"
        )
        world.samples = await run_samples(server.url, credentials, samples, base_port=0)
        try:
            for running in world.samples.instances:
                assert running.agent is not None
                await running.agent.wait_registered(10)
            for pool in sample_pools(samples):  # their first description, pending until approved
                await asyncio.to_thread(world.cli, "pools", "approve", "/".join(pool))
            # console-1 may discover GM and MCPTT (provision()): those pools must show their description
            await approved_in_view(world, len([p for p in sample_pools(samples) if p[0] in ("GM", "MCPTT")]))
            yield world
        finally:
            await world.samples.stop()
            if server.proc is not first and server.proc.poll() is None:  # restarted: live_server
                server.kill(signal.SIGTERM)  # only knows the first process
