"""RFC 9110 9.3.2 on the control plane: ``HEAD`` on every ``GET`` endpoint answers what the ``GET``
would (status and headers, Content-Length included) with no content, on the real HTTP server, and
the connection carries on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.routing import Route
from starlette.types import ASGIApp

from asgate.kernel.web import SegmentRouter
from asgate.system.serving import _Server
from tests.access.conftest import Raw
from tests.conftest import Mint
from tests.live import free_port

ADMIN = (
    "openid",
    "mcx-registry",
    "mcx-registry-admin",
    "mcx-access-profiles",
    "msgs-admin",
    "asgate-metrics",
)
# Every GET route of the control plane, with a path to ask and the status a GET gets there.
GET_ROUTES = {
    "/healthz": ("/healthz", 200),
    "/metrics": ("/metrics", 200),
    "/oauth2/authorize": ("/oauth2/authorize", 400),
    "/oauth2/jwks": ("/oauth2/jwks", 200),
    "/userinfo": ("/userinfo", 401),  # an application token stands for no MC user
    "/.well-known/openid-configuration": ("/.well-known/openid-configuration", 200),
    "/.well-known/oauth-authorization-server": ("/.well-known/oauth-authorization-server", 200),
    "/msgs-admin/v1/registrations": ("/msgs-admin/v1/registrations", 200),
    "/msgs-admin/v1/registrations/{registrationId}": ("/msgs-admin/v1/registrations/none", 404),
    "/mcx-service-registration/v1/services/{serviceInstanceId}": (
        "/mcx-service-registration/v1/services/none",
        403,
    ),
    "/mcx-registry/v1/service-information": (
        "/mcx-registry/v1/service-information?mc-service-id=alice%40mc.example",
        403,  # ops is no registered external application
    ),
    "/mcx-registry/v1/app-profiles/{appProfileId}": ("/mcx-registry/v1/app-profiles/none", 404),
    "/mcx-registry/v1/notifications": ("/mcx-registry/v1/notifications", 426),
    "/mcx-registry-sync/v1/snapshot": ("/mcx-registry-sync/v1/snapshot", 200),
    "/mcx-registry-sync/v1/revocations": ("/mcx-registry-sync/v1/revocations", 200),
    "/mcx-registry-admin/v1/access-servers": ("/mcx-registry-admin/v1/access-servers", 200),
    "/mcx-registry-admin/v1/apps": ("/mcx-registry-admin/v1/apps", 200),
    "/mcx-registry-admin/v1/apps/{clientId}": ("/mcx-registry-admin/v1/apps/none", 404),
    "/mcx-registry-admin/v1/grants": ("/mcx-registry-admin/v1/grants", 200),
    "/mcx-registry-admin/v1/app-profiles": ("/mcx-registry-admin/v1/app-profiles", 200),
    "/mcx-registry-admin/v1/app-profiles/{appProfileId}": ("/mcx-registry-admin/v1/app-profiles/none", 404),
    "/mcx-registry-admin/v1/services": ("/mcx-registry-admin/v1/services", 200),
    "/mcx-registry-admin/v1/services/{serviceInstanceId}": ("/mcx-registry-admin/v1/services/none", 404),
    "/mcx-registry-admin/v1/pools": ("/mcx-registry-admin/v1/pools", 200),
    "/mcx-registry-admin/v1/pools/{serviceType}/{serviceName}": ("/mcx-registry-admin/v1/pools/GM/none", 404),
    "/mcx-registry-admin/v1/outbox": ("/mcx-registry-admin/v1/outbox", 200),
    "/mcx-registry-admin/v1/audit": ("/mcx-registry-admin/v1/audit", 200),
    "/mcx-access-profiles/v1/state": ("/mcx-access-profiles/v1/state", 200),
    "/mcx-access-profiles/v1/sequence": ("/mcx-access-profiles/v1/sequence", 200),
    "/docs": ("/docs", 200),
    "/docs/assets/{file}": ("/docs/assets/swagger-ui-bundle.js", 200),
    "/docs/{api}": ("/docs/mcx-registry", 200),
    "/openapi/{api}.yaml": ("/openapi/mcx-registry.yaml", 200),
}
VARYING = frozenset({"date", "x-request-id"})
CHANGING = frozenset({"/metrics", "/mcx-registry-admin/v1/audit"})  # each request changes the content


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # the store is not what this is about


@pytest.fixture
async def port(app: ASGIApp) -> AsyncIterator[int]:
    chosen = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=chosen,
        http="httptools",
        lifespan="off",
        log_config=None,
        access_log=False,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield chosen
    server.should_exit = True
    await serving


def test_the_table_names_every_get_route(app: ASGIApp) -> None:
    router: object = app
    while not isinstance(router, SegmentRouter) and hasattr(router, "app"):  # through the middleware
        router = router.app
    assert isinstance(router, SegmentRouter)
    gets = {r.path for r in router.routes if isinstance(r, Route) and r.methods and "GET" in r.methods}
    assert gets == set(GET_ROUTES)


@pytest.mark.parametrize("route", list(GET_ROUTES))
async def test_head_answers_like_get_without_content(port: int, mint: Mint, route: str) -> None:
    path, expected = GET_ROUTES[route]
    auth = f"authorization: Bearer {mint('ops', *ADMIN, sub='ops')}\r\n"
    client = await Raw.open(port)
    try:

        async def ask(method: str) -> tuple[int, dict[str, str], bytes]:
            await client.send(f"{method} {path} HTTP/1.1\r\nhost: asgate\r\n{auth}\r\n".encode())
            return await client.response(timeout=5, head_only=method == "HEAD")

        get = await ask("GET")
        head = await ask("HEAD")
        after = await ask("GET")  # the HEAD left nothing on the connection
        assert (get[0], head[0], after[0]) == (expected, expected, expected), get[2][:300]
        varying = VARYING | {"content-length"} if route in CHANGING else VARYING
        assert {k: v for k, v in head[1].items() if k not in varying} == {
            k: v for k, v in get[1].items() if k not in varying
        }
        assert ("content-length" in head[1]) == ("content-length" in get[1])
        if "content-length" in get[1]:
            assert int(get[1]["content-length"]) == len(get[2])
        assert after[2] == get[2] or route in CHANGING
        client.writer.write_eof()
        assert await asyncio.wait_for(client.reader.read(), 5) == b""  # no stray body bytes
    finally:
        await client.close()
