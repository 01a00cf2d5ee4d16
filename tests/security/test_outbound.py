"""Trust boundary: the system -> addresses that clients chose (``notificationDestination``,
``defaultNotificationDestination``, ``targetUri``). The attacker is an external application, an
administrator's typo or an Application Server that wants the registry to call something inside
(the registry itself, the cloud metadata service) for it: server-side request forgery.

Defaults as shipped: loopback, link-local, metadata and friends denied (the fixtures of the rest of
the suite allow loopback; these tests put the defaults back).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiohttp.abc import AbstractResolver, ResolveResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from asgate.kernel.settings import Settings
from asgate.kernel.uripolicy import instance_policy, outbound_policy
from asgate.store.registry import Delivery
from asgate.system.runtime import Runtime
from asgate.system.serving import _Server
from tests.conftest import Mint, Provision, bearer
from tests.live import free_port
from tests.receiver import Receiver, running_receiver
from tests.registry.conftest import ADMIN, REGISTRY, admin_app, admin_grant, gm_registration, register

ALICE = "alice@mc.example"
MSGS = "/msgs-asregistration/v1/registrations"

# Every spelling of "somewhere inside" an attacker has tried; {port} is a live receiver on 127.0.0.1,
# so a URI that slipped through would show as a request it received.
BYPASSES = [
    "http://127.0.0.1:{port}/notify",
    "http://127.8.9.10:{port}/notify",
    "http://[::1]:{port}/notify",
    "http://[::ffff:127.0.0.1]:{port}/notify",  # IPv4-mapped
    "http://[::ffff:7f00:1]:{port}/notify",
    "http://[::127.0.0.1]:{port}/notify",  # IPv4-compatible
    "http://[::ffff:0:7f00:1]:{port}/notify",  # IPv4-translated
    "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64
    "http://[64:ff9b::7f00:1]:{port}/notify",
    "http://[64:ff9b:1:7f00:0:100::]:{port}/notify",  # local-use NAT64, /48 layout
    "http://[2002:7f00:1::1]:{port}/notify",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]:{port}/notify",  # Teredo client 127.0.0.1
    "http://[fe80::1%25eth0]:{port}/notify",  # zone id
    "http://localhost:{port}/notify",
    "http://localhost.:{port}/notify",
    "http://LocalHost:{port}/notify",
    "http://app.localhost:{port}/notify",
    "http://ｌｏｃａｌｈｏｓｔ:{port}/notify",  # full-width, IDNA-mapped to localhost
    "http://１２７．０．０．１:{port}/notify",
    "http://2130706433:{port}/notify",  # 127.0.0.1 as one number
    "http://0x7f000001:{port}/notify",
    "http://0177.0.0.1:{port}/notify",
    "http://127.1:{port}/notify",
    "http://0x7f.1:{port}/notify",
    "http://127.000.000.001:{port}/notify",
    "http://127.0.0.1.:{port}/notify",
    "http://%6cocalhost:{port}/notify",
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/latest/meta-data/",
    "http://0xa9fea9fe/latest/meta-data/",
    "http://0251.0376.0251.0376/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata.google.internal./computeMetadata/v1/",
    "http://metadata/computeMetadata/v1/",
    "http://100.100.100.200/latest/meta-data/",
    "http://192.0.0.192/opc/v2/instance/",
    "http://0.0.0.0:{port}/notify",
    "http://[::]:{port}/notify",
    "http://224.0.0.1/notify",
    "http://[ff02::1]/notify",
    "http://255.255.255.255/notify",
    "http://user@as.example.org@127.0.0.1:{port}/notify",
    "http://as.example.org\\@127.0.0.1:{port}/notify",
    "gopher://127.0.0.1:{port}/_notify",
]


@pytest.fixture
def loopback() -> bool:
    return False  # the shipped outbound policy


@pytest.fixture
def settings(make_settings: Callable[..., Settings], loopback: bool) -> Settings:
    # Instances stay allowed on loopback (their policy is test_instance_addresses.py's); fast
    # retries, so that send attempts show within a test.
    return make_settings(outbound_allow_loopback=loopback, registry_retry_base=0.05, registry_retry_max=0.2)


class Answers(AbstractResolver):
    """DNS as an attacker who owns a zone runs it: ``names`` answer whatever the test says, now."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}
        self.asked: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.asked.append(host)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.names[host]
        ]

    async def close(self) -> None:
        return None


@pytest.fixture
def dns() -> Answers:
    return Answers()


@pytest.fixture
async def rt(settings: Settings, dns: Answers) -> AsyncIterator[Runtime]:
    async with Runtime.open(settings) as runtime:
        runtime.callback_resolver = dns  # before the app starts: the notifier's session resolves here
        yield runtime


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as started:
        yield started


@pytest.fixture
async def world(http: httpx.AsyncClient, mint: Mint, service_clients: None) -> dict[str, str]:
    """A GM instance, console-1 allowed GM, alice granted: ready for an authorization."""
    tokens = {
        "gms-1": mint("gms-1", "mcx-service-registration"),
        "console-1": mint("console-1", "mcx-registry"),
        "ops": mint("ops", "mcx-registry-admin"),
    }
    assert (await register(http, tokens["gms-1"], gm_registration())).status_code == 201
    assert (await admin_app(http, tokens["ops"], "console-1")).status_code == 201
    assert (await admin_grant(http, tokens["ops"], "console-1", ALICE)).status_code == 201
    return tokens


def _authorize(destination: str) -> dict[str, Any]:
    return {
        "mcServiceId": ALICE,
        "requestType": "AUTHORIZE",
        "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
        "notificationDestination": destination,
    }


def _bypasses(port: int) -> Iterator[str]:
    return (uri.format(port=port) for uri in BYPASSES)


def _refused(response: httpx.Response, pointer: str, uri: str) -> None:
    assert response.status_code == 400, (uri, response.text)
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["cause"] == "URI_NOT_ALLOWED", uri
    assert [p["param"] for p in problem["invalidParams"]] == [pointer], uri
    assert problem["invalidParams"][0]["reason"], uri


async def test_notification_destinations_that_point_inside_are_refused_when_submitted(
    http: httpx.AsyncClient, world: dict[str, str], rt: Runtime, receiver: Receiver
) -> None:
    port = int(receiver.base.rsplit(":", 1)[1])
    for uri in _bypasses(port):
        response = await http.post(
            f"{REGISTRY}/authorizations", json=_authorize(uri), headers=bearer(world["console-1"])
        )
        _refused(response, "/notificationDestination", uri)
    # Nothing stored: no profile, no subscription, nothing to send; nothing reached the receiver.
    assert await rt.store.registry.profiles() == []
    assert await rt.store.registry.subscription("console-1") is None
    assert await rt.store.registry.deliveries() == []
    assert receiver.requests == []


async def test_default_notification_destinations_that_point_inside_are_refused_when_submitted(
    http: httpx.AsyncClient, world: dict[str, str], rt: Runtime, receiver: Receiver
) -> None:
    port = int(receiver.base.rsplit(":", 1)[1])
    before = await rt.store.registry.app("console-1")
    for uri in _bypasses(port):
        body = {"allowedServices": [{"serviceType": "GM"}], "defaultNotificationDestination": uri}
        response = await http.put(f"{ADMIN}/apps/console-1", json=body, headers=bearer(world["ops"]))
        _refused(response, "/defaultNotificationDestination", uri)
    assert await rt.store.registry.app("console-1") == before
    assert receiver.requests == []


async def test_target_uris_that_point_inside_are_refused_when_submitted(
    http: httpx.AsyncClient, provision: Provision, token_for: Callable[..., Any], rt: Runtime
) -> None:
    await provision("as-1", as_svc_ids=("AS1",))
    token = await token_for("as-1")
    for uri in _bypasses(9200):
        response = await http.post(MSGS, json={"asSvcId": "AS1", "targetUri": uri}, headers=bearer(token))
        _refused(response, "/targetUri", uri)
    assert await rt.store.registrations.count() == 0
    # The same AS with an address on the MC network is registered (private ranges stay allowed).
    fine = await http.post(
        MSGS, json={"asSvcId": "AS1", "targetUri": "http://10.20.30.40:9200/cb"}, headers=bearer(token)
    )
    assert fine.status_code == 201 and await rt.store.registrations.count() == 1


async def _attempts(rt: Runtime, app_id: str, timeout: float = 10.0) -> Delivery:
    """The application's first notification, once it was tried at least once."""
    async with asyncio.timeout(timeout):
        while True:
            found = await rt.store.registry.deliveries(app_id=app_id)
            if found and found[0].attempts >= 1:
                return found[0]
            await asyncio.sleep(0.05)


async def _authorize_and_edit(http: httpx.AsyncClient, world: dict[str, str], destination: str) -> None:
    """Authorize console-1 with ``destination``, then edit its profile: a notification is due."""
    answer = await http.post(
        f"{REGISTRY}/authorizations", json=_authorize(destination), headers=bearer(world["console-1"])
    )
    assert answer.status_code == 200, answer.text  # a name passes when stored: it is not resolved then
    profile = answer.json()["applicationProfiles"][0]
    edited = await http.put(
        f"{ADMIN}/app-profiles/{profile['appProfileId']}",
        json={"maxPriority": "mcpttp.3"},
        headers={**bearer(world["ops"]), "If-Match": '"1"'},
    )
    assert edited.status_code == 200, edited.text


@pytest.mark.parametrize(
    "answer",
    [["127.0.0.1"], ["10.255.255.1", "127.0.0.1"], ["::ffff:127.0.0.1"], ["169.254.169.254"]],
    ids=["loopback", "one-of-two", "mapped", "metadata"],
)
async def test_a_name_that_resolves_inside_at_send_time_is_not_called(
    http: httpx.AsyncClient,
    world: dict[str, str],
    rt: Runtime,
    receiver: Receiver,
    dns: Answers,
    answer: list[str],
) -> None:
    port = int(receiver.base.rsplit(":", 1)[1])
    name = "notify.attacker.example"
    dns.names[name] = answer  # DNS rebinding: harmless when submitted, inside when called
    await _authorize_and_edit(http, world, f"http://{name}:{port}/notify")
    delivery = await _attempts(rt, "console-1")
    assert delivery.state != "DELIVERED" and delivery.last_error is not None
    assert delivery.last_error.startswith("refused by the outbound URI policy: resolves to ")
    assert name in dns.asked  # resolved once, by the resolver the connection uses
    await asyncio.sleep(0.3)  # retries come and go: still nothing
    assert receiver.requests == []


@asynccontextmanager
async def _redirector(location: str) -> AsyncIterator[tuple[str, list[str]]]:
    """A real receiver answering every request 307 to ``location``: its URL and what it saw."""
    seen: list[str] = []

    async def handle(request: Request) -> Response:
        seen.append(f"{request.method} {request.url.path}")
        return RedirectResponse(location, status_code=307)

    port = free_port()
    app = Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST"])])
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/notify", seen
    finally:
        server.should_exit = True
        await task


@pytest.mark.parametrize("loopback", [True])
async def test_redirects_are_never_followed(
    http: httpx.AsyncClient, world: dict[str, str], rt: Runtime, receiver: Receiver
) -> None:
    # Loopback allowed here, so the redirector is reachable and a followed redirect to the second
    # loopback receiver would pass the policy: only "never follow" stands in its way.
    async with _redirector(receiver.url) as (url, seen):
        await _authorize_and_edit(http, world, url)
        delivery = await _attempts(rt, "console-1")
        await asyncio.sleep(0.3)  # retries come and go
    assert delivery.last_error == "HTTP 307" and delivery.state != "DELIVERED"
    assert seen and set(seen) == {"POST /notify"}  # the redirector was asked...
    assert receiver.requests == []  # ...and where it pointed, never


def test_the_shipped_defaults_deny_loopback_and_metadata_for_uris_and_instances(tmp_path: Path) -> None:
    # `asgate up` and `asgate serve` take these (only --samples and the demo lift loopback).
    shipped = Settings.load(None, data_dir=tmp_path)
    uris, instances = outbound_policy(shipped), instance_policy(shipped)
    for host in ("127.0.0.1", "[::1]", "localhost", "169.254.169.254", "[fd00:ec2::254]", "metadata"):
        assert uris.check(f"http://{host}/x") is not None, host
        assert instances.check_host(host) is not None, host
    for host in ("10.1.2.3", "172.16.0.9", "192.168.7.7", "100.64.1.1", "[fd12::3]", "gms.mc.example"):
        assert uris.check(f"http://{host}/x") is None, host
        assert instances.check_host(host) is None, host
