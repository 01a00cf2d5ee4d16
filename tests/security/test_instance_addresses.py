"""Trust boundary: MC service -> registry -> service access server, for *where* an instance is. An
instance registers its address (``ipv4Addr``, ``ipv6Addr``, ``fqdn``) and the SAS connects there for
external applications: a rogue or compromised service that registers 169.254.169.254 (or the SAS's
own loopback) turns the SAS into a window on the cloud metadata service or on the host itself.

Defaults as shipped: loopback, link-local, metadata and friends denied for instances too (the rest
of the suite allows loopback explicitly; these tests put the defaults back).
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgate.access.options import PoolOptions
from asgate.access.server import AccessServer
from asgate.access.upstream import Endpoint, UpstreamPool
from asgate.kernel.settings import Settings
from asgate.samples import LOOPBACK_ALLOWED
from asgate.store import AuditEvent, Store
from asgate.system.runtime import Runtime
from tests.access import conftest as access
from tests.access.backend import Backend
from tests.access.conftest import FAST, FAST_POOL, request
from tests.conftest import Mint, bearer
from tests.live import live_server
from tests.registry.conftest import SERVICES, gm_registration, register

# Where a rogue instance would like the SAS to connect, each way it may be written.
INSIDE: list[dict[str, str]] = [
    {"ipv4Addr": "169.254.169.254"},
    {"ipv4Addr": "127.0.0.1"},
    {"ipv4Addr": "127.8.9.10"},
    {"ipv4Addr": "0.0.0.0"},
    {"ipv4Addr": "100.100.100.200"},
    {"ipv4Addr": "192.0.0.192"},
    {"ipv4Addr": "224.0.0.1"},
    {"ipv4Addr": "255.255.255.255"},
    {"ipv6Addr": "::1"},
    {"ipv6Addr": "::"},
    {"ipv6Addr": "::ffff:169.254.169.254"},
    {"ipv6Addr": "::ffff:7f00:1"},
    {"ipv6Addr": "::127.0.0.1"},
    {"ipv6Addr": "64:ff9b::a9fe:a9fe"},
    {"ipv6Addr": "2002:a9fe:a9fe::1"},
    {"ipv6Addr": "fe80::1%eth0"},
    {"ipv6Addr": "fd00:ec2::254"},
    {"ipv6Addr": "ff02::1"},
    {"fqdn": "localhost"},
    {"fqdn": "LOCALHOST."},
    {"fqdn": "gm.localhost"},
    {"fqdn": "metadata.google.internal"},
    {"fqdn": "metadata"},
    {"fqdn": "169.254.169.254"},
    {"fqdn": "2852039166"},
    {"fqdn": "0xa9fea9fe"},
    {"fqdn": "0251.0376.0251.0376"},
    {"fqdn": "127.1"},
    {"fqdn": "0x7f.1"},
    {"fqdn": "127.0.0.1."},
    {"fqdn": "ｌｏｃａｌｈｏｓｔ"},
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(instance_allow_loopback=False)  # the shipped instance policy


@pytest.fixture
def gms(mint: Mint, service_clients: None) -> str:
    """gms-1, provisioned for its pools (item 1): what it may not do here is the address's doing."""
    return mint("gms-1", "mcx-service-registration")


def _at(address: dict[str, str]) -> dict[str, Any]:
    body = gm_registration()
    interface = {k: v for k, v in body["interfaces"][0].items() if k != "ipv4Addr"}
    body["interfaces"] = [interface | address]
    return body


def _refused(response: httpx.Response, address: dict[str, str]) -> None:
    assert response.status_code == 400, (address, response.text)
    problem = response.json()
    assert problem["cause"] == "ADDRESS_NOT_ALLOWED", address
    assert [p["param"] for p in problem["invalidParams"]] == [f"/interfaces/0/{next(iter(address))}"]


async def test_instances_that_point_inside_are_refused_at_registration(
    http: httpx.AsyncClient, gms: str, rt: Runtime
) -> None:
    for address in INSIDE:
        _refused(await register(http, gms, _at(address)), address)
    # Nothing stored, nothing in the change log the SAS follows (no pool ever reached it).
    assert await rt.store.registry.instances() == []
    assert await rt.store.registry.changes(0) == []
    # Every attempt audited against the client, with the field and the reason.
    denied = await _denials(rt, "service.register")
    assert [(e.actor, e.resource) for e in denied] == [("gms-1", "service-pool/GM/gms")] * len(INSIDE)
    assert all(e.reason and e.reason.startswith("/interfaces/0/") for e in denied)
    # An instance on the MC network (private ranges) is registered.
    assert (await register(http, gms, _at({"ipv4Addr": "10.20.30.40"}))).status_code == 201


async def test_an_update_cannot_move_an_instance_inside(
    http: httpx.AsyncClient, gms: str, rt: Runtime
) -> None:
    created = await register(http, gms, _at({"fqdn": "gms-1.mc.example"}))
    assert created.status_code == 201
    url = f"{SERVICES}/{created.json()['serviceInstanceId']}"
    before = await rt.store.registry.instances()
    changes = await rt.store.registry.changes(0)
    for address in INSIDE:
        response = await http.put(url, json=_at(address), headers=bearer(gms))
        _refused(response, address)
    assert await rt.store.registry.instances() == before
    assert await rt.store.registry.changes(0) == changes
    denied = await _denials(rt, "service.update")
    assert [(e.actor, e.resource) for e in denied] == [
        ("gms-1", f"service-instance{url[len(SERVICES) :]}")
    ] * len(INSIDE)


async def _denials(rt: Runtime, action: str) -> list[AuditEvent]:
    return [e for e in await rt.store.audit.scan(limit=1000, action=action) if e.outcome == "denied"]


@pytest.fixture
async def engine() -> AsyncIterator[Callable[[Settings, str], Any]]:
    """A real SAS engine in front of one real backend on 127.0.0.1, its pool options taken from
    settings (as the access role builds them); the endpoint's host is the test's."""
    started: list[tuple[AccessServer, UpstreamPool, Backend]] = []

    async def make(settings: Settings, host: str) -> tuple[int, Backend]:
        backend = await Backend().start()
        options = dataclasses.replace(
            FAST_POOL, resolve=PoolOptions.from_settings(settings).resolve, eject_after=100
        )
        pool = UpstreamPool("gm", [Endpoint("gm-1", host, backend.port)], options)
        server = AccessServer(access.TestGate(pool), FAST)
        await server.start("127.0.0.1", 0)
        started.append((server, pool, backend))
        return server.port, backend

    yield make
    for server, pool, backend in started:
        await server.stop(grace=0.5)
        pool.close()
        await backend.stop()


@pytest.mark.parametrize("backend", ["sqlite"])  # no store involved
@pytest.mark.parametrize(
    ("host", "deny"),
    [
        ("127.0.0.1", None),  # registered before the policy, or under a laxer one
        ("::ffff:127.0.0.1", None),
        # A name the deny list does not name, resolving inside when the SAS connects (the system's
        # resolver: "localhost" is in every /etc/hosts).
        ("localhost", "127.0.0.0/8,::1/128,169.254.0.0/16"),
    ],
)
async def test_the_sas_never_connects_to_a_denied_address(
    make_settings: Callable[..., Settings],
    engine: Callable[[Settings, str], Any],
    host: str,
    deny: str | None,
) -> None:
    extra = {"instance_deny_hosts": deny} if deny else {}
    port, backend = await engine(make_settings(instance_allow_loopback=False, **extra), host)
    status, _, _ = await request(port, "/1/echo")
    assert status in (502, 503)
    assert (backend.connections, backend.requests) == (0, [])  # not even a TCP connection
    # The same instance with loopback allowed (a lab) is reached: the refusal was the policy's.
    port, backend = await engine(make_settings(instance_allow_loopback=True, **extra), host)
    status, _, _ = await request(port, "/1/echo")
    assert status == 200 and backend.connections == 1


async def _registered(db: Path, count: int, timeout: float = 20.0) -> int:
    store = await Store.open(f"sqlite+aiosqlite:///{db}")
    try:
        async with asyncio.timeout(timeout):
            while len(await store.registry.instances()) < count:
                await asyncio.sleep(0.2)
        return len(await store.registry.instances())
    finally:
        await store.close()


@pytest.mark.slow
@pytest.mark.xdist_group("process")
async def test_only_up_with_samples_allows_loopback_and_says_so(tmp_path: Path) -> None:
    shipped = {"outbound_allow_loopback": "false", "instance_allow_loopback": "false"}
    data = tmp_path / "samples"
    with live_server(data, None, args=["--samples", "--samples-port", "0"], **shipped) as server:
        assert await _registered(data / "asgate.db", 5) == 5  # the samples on 127.0.0.1
        deadline = time.monotonic() + 10
        while LOOPBACK_ALLOWED not in server.log.read_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert LOOPBACK_ALLOWED in server.log.read_text()
        assert server.kill(signal.SIGTERM) == 0
    # Plain `asgate up`: the shipped policy; an instance on 127.0.0.1 is refused, nothing stored.
    data = tmp_path / "plain"
    with live_server(data, None, **shipped) as server:
        server.cli("clients", "add", "gms-1", "--secret", "gms-1-secret-0123456789abcdef",
                   "--scope", "mcx-service-registration")  # fmt: skip
        async with httpx.AsyncClient(base_url=server.url) as client:
            token = await client.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=("gms-1", "gms-1-secret-0123456789abcdef"),
            )
            answer = await client.post(
                SERVICES, json=gm_registration(), headers=bearer(token.json()["access_token"])
            )
        _refused(answer, {"ipv4Addr": "127.0.0.1"})
        assert LOOPBACK_ALLOWED not in server.log.read_text()
    assert await _registered(data / "asgate.db", 0) == 0
