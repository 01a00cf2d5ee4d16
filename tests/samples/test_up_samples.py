"""``asgate up --samples`` (what ``make run`` runs): the sample MC services come up registered with
the control plane through their agents, say where things are and deregister on SIGTERM; their
client and secret are provisioned once and found again at every later start."""

from __future__ import annotations

import asyncio
import signal
import stat
import time
from pathlib import Path

import pytest

from asgate.idm.passwords import verify_secret
from asgate.samples.attached import provision_client
from asgate.store import Store
from asgate.system.runtime import Runtime
from tests.live import live_server

SAMPLES = ["--samples", "--samples-port", "0"]  # never the default ports: tests run in parallel


async def _instances(db: Path, count: int, timeout: float = 20.0) -> list[tuple[str, str, str, int]]:
    """(pool, status, client, heartbeat period) of every instance, once ``count`` are registered."""
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        async with asyncio.timeout(timeout):
            while True:
                rows = [
                    ("/".join(r.pool), r.status, r.client_id, r.registration.heartbeat_period)
                    for r in await store.registry.instances()
                ]
                if sum(status == "REGISTERED" for _, status, _, _ in rows) >= count or count == 0:
                    return rows
                await asyncio.sleep(0.2)
    finally:
        await store.close()


def _banner(log: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while "asgate is up" not in (text := log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return text


@pytest.mark.slow
@pytest.mark.xdist_group("process")
async def test_the_samples_come_up_registered_and_leave_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with live_server(data, args=SAMPLES) as server:
        instances = await _instances(data / "asgate.db", 5)
        assert sorted(instances) == [
            ("CM/sample-cm", "REGISTERED", "samples", 2),
            ("GM/sample-gm", "REGISTERED", "samples", 2),
            ("GM/sample-gm", "REGISTERED", "samples", 2),  # two instances of one pool: failover
            ("MCData/sample-mcdata", "REGISTERED", "samples", 2),
            ("MCPTT/sample-mcptt", "REGISTERED", "samples", 2),
        ]
        secret = data / "samples-secret"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600 and len(secret.read_text().strip()) >= 32
        banner = _banner(server.log)
        assert f"control plane   {server.url}" in banner and f"{server.url}/docs" in banner
        assert server.env["ASGATE_SAS_LISTEN"] in banner and "asgate demo" in banner
        assert server.kill(signal.SIGTERM) == 0
    assert await _instances(data / "asgate.db", 0) == []  # they deregistered before the registry stopped


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # the store is not what this is about


async def test_the_samples_client_is_provisioned_once_and_repaired_from_the_secret_file(rt: Runtime) -> None:
    data = rt.settings.data_dir
    secret = await provision_client(rt.store, data)
    client = await rt.store.clients.get("samples")
    assert client is not None and client.scopes == ("mcx-service-registration",)
    assert (
        verify_secret(client.secret_hash, secret) and (data / "samples-secret").read_text().strip() == secret
    )

    assert await provision_client(rt.store, data) == secret  # a restart changes nothing
    assert (await rt.store.clients.get("samples")) == client

    await rt.store.write(
        lambda tx: tx.clients.update("samples", scopes=("openid",))
    )  # an administrator's edit
    (data / "samples-secret").unlink()  # and a lost secret file
    renewed = await provision_client(rt.store, data)
    repaired = await rt.store.clients.get("samples")
    assert renewed != secret and repaired is not None
    assert repaired.scopes == ("openid", "mcx-service-registration")
    assert verify_secret(repaired.secret_hash, renewed) and not verify_secret(repaired.secret_hash, secret)
    actions = [e.action for e in await rt.store.audit.scan()]
    assert actions.count("client.add") == 1 and actions.count("client.update") == 1
