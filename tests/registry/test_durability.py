"""Notification durability (seed 10.X.4 step 2): the outbox survives kill -9 while the application's
receiver is down; after the restart the newest version arrives, nothing arrives out of order and every
version is accounted for as delivered or superseded."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import bearer
from tests.live import LiveServer, free_port, live_server
from tests.receiver import running_receiver
from tests.registry.conftest import REGISTRY, SERVICES, gm_registration

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]
ALICE = "alice@mc.example"


def _outbox(server: LiveServer) -> list[dict[str, Any]]:
    listed = json.loads(server.cli("outbox", "list", "--json", "--limit", "1000").stdout)
    notifications: list[dict[str, Any]] = listed["notifications"]
    return notifications


async def _token(http: httpx.AsyncClient, client_id: str, scope: str) -> str:
    response = await http.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client_id, f"{client_id}-secret"),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def _edit(server: LiveServer, profile_id: str, priority: int) -> int:
    """An administrator edit through the CLI; the new version it acknowledged."""
    out = server.cli("profiles", "update", profile_id, "--max-priority", f"mcpttp.{priority}", "--json")
    return int(json.loads(out.stdout)["version"])


async def test_kill_9_with_the_receiver_down_loses_no_notification(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    hook_port = free_port()  # nothing listens here until after the restart
    fast_retries = {"registry_retry_base": "0.1", "registry_retry_max": "0.3"}
    with live_server(tmp_path / "data", database, **fast_retries) as server:
        for client_id, scope in (("console-1", "mcx-registry"), ("gms-1", "mcx-service-registration")):
            server.cli("clients", "add", client_id, "--scope", scope, "--secret", f"{client_id}-secret")
        server.cli("clients", "update", "gms-1", "--add-pool", "GM/gms")
        server.cli("apps", "add", "console-1", "--allow", "GM", "--max-priority", "mcpttp.15")
        server.cli("grants", "add", "console-1", ALICE)
        async with httpx.AsyncClient(base_url=server.url) as http:
            service = await _token(http, "gms-1", "mcx-service-registration")
            registered = await http.post(SERVICES, json=gm_registration(), headers=bearer(service))
            assert registered.status_code == 201, registered.text
            server.cli("pools", "approve", "GM/gms")  # its first description, pending until approved
            app = await _token(http, "console-1", "mcx-registry")
            authorized = await http.post(
                f"{REGISTRY}/authorizations",
                json={
                    "mcServiceId": ALICE,
                    "requestType": "AUTHORIZE",
                    "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
                    "notificationDestination": f"http://127.0.0.1:{hook_port}/notify",
                },
                headers=bearer(app),
            )
            assert authorized.status_code == 200, authorized.text
            (profile,) = authorized.json()["applicationProfiles"]
        profile_id = profile["appProfileId"]

        acknowledged = [_edit(server, profile_id, priority) for priority in (3, 4, 5, 6)]
        assert acknowledged == sorted(acknowledged)
        # The registry is trying (connection refused, retried with backoff) when it is killed.
        async with asyncio.timeout(20):
            while not any(n["attempts"] > 0 for n in _outbox(server)):
                await asyncio.sleep(0.1)
        assert server.kill(signal.SIGKILL) == -signal.SIGKILL

        server.start_again()
        async with running_receiver(hook_port) as receiver:
            await receiver.wait_for(lambda got: got and got[-1]["version"] == acknowledged[-1], timeout=30)
            acknowledged.append(_edit(server, profile_id, 7))  # and one more after the restart
            await receiver.wait_for(lambda got: got[-1]["version"] == acknowledged[-1], timeout=30)

        versions = [n["version"] for n in receiver.received]
        assert versions == sorted(set(versions)), f"out of order or repeated: {versions}"
        assert {n["appProfileId"] for n in receiver.received} == {profile_id}
        outbox = _outbox(server)
        states = {n["version"]: n["state"] for n in outbox}
        assert set(acknowledged) <= set(states), (
            f"notifications lost: {sorted(set(acknowledged) - set(states))}"
        )
        assert "PENDING" not in states.values()
        assert {v for v, state in states.items() if state == "DELIVERED"} == set(versions)
        assert states[acknowledged[-1]] == "DELIVERED"
