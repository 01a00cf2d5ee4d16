"""The real service registry server in-process, reached through a transport that can be cut
(``down = True``: every request fails to connect, as when the registry is down), that records
when each request was sent, and that checks every ``mcx-service-registration`` request and
response against the OpenAPI document. Import the fixtures into a test module:

    from tests.client.harness import Registry, fast_registry, fast_settings, sqlite_only  # noqa: F401

Liveness is fast: an instance is suspended after 2 missed 1-second periods and removed 1 s later.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_core.testing import MockRequest
from starlette.types import ASGIApp

import asgate.registry
from asgate.client import ClientCredentials, ServiceAgent
from asgate.kernel.settings import Settings
from asgate.samples import SPECS
from tests import contract
from tests.conftest import Provision

URL = "http://registry.test"
API = "/mcx-service-registration/v1"
SERVICES = f"{API}/services"
DOCUMENT = Path(asgate.registry.__file__).parent / "openapi" / "service-registration.yaml"
MISSED_HEARTBEATS = 2
REMOVAL_GRACE = 3.0  # long enough that "suspended, not removed" holds on a loaded machine


def conforms(request: httpx.Request, response: httpx.Response) -> None:
    """Raise unless the request and the response both conform to ``service-registration.yaml``."""
    url = request.url
    mock = MockRequest(
        f"{url.scheme}://{url.netloc.decode()}",
        request.method.lower(),
        url.path,
        headers=dict(request.headers),
        data=request.content or None,
        content_type=request.headers.get("content-type", "application/json").split(";")[0],
    )
    with warnings.catch_warnings():  # openapi-core cannot check an oauth2 scheme; the registry does
        warnings.filterwarnings("ignore", "Unsupported scheme type", UserWarning)
        contract.load(DOCUMENT).validate_request(mock)
    contract.check(DOCUMENT, response)


class Cuttable(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = False
        self.check = True  # request and response conform to the document (off: sending garbage on purpose)
        self.sent: list[tuple[float, str, str]] = []  # (monotonic time, method, path)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append((time.monotonic(), request.method, request.url.path))
        if self.down:
            raise httpx.ConnectError("connection refused (the registry is down)", request=request)
        response = await self.inner.handle_async_request(request)
        if self.check and request.url.path.startswith(
            API
        ):  # the agent and the registry both follow the document
            await response.aread()
            response.request = request
            conforms(request, response)
        return response

    def times(self, method: str, path_end: str) -> list[float]:
        return [t for t, m, p in self.sent if m == method and p.endswith(path_end)]


class Registry:
    def __init__(self, app: ASGIApp, provision: Provision) -> None:
        self.inner = httpx.ASGITransport(app=app)
        self.transport = Cuttable(self.inner)
        self.url = URL
        self._provision = provision

    async def add_client(self, client_id: str = "gms") -> None:
        await self._provision(
            client_id,
            scopes=("mcx-service-registration",),
            service_pools=("GM/*", "CM/*", "MCData/*", "MCPTT/*"),
        )

    def credentials(self, client_id: str = "gms", secret: str | None = None) -> ClientCredentials:
        return ClientCredentials(
            f"{URL}/oauth2/token", client_id, secret or f"{client_id}-secret", "mcx-service-registration"
        )

    def agent(self, period: int = 1, instance: str = "gm-1", port: int = 9101, **kw: Any) -> ServiceAgent:
        """A fast-retrying agent for a GM instance, through the cuttable transport."""
        options: dict[str, Any] = {"health_interval": 0.1, "retry_initial": 0.05, "retry_max": 0.2}
        return ServiceAgent(
            URL,
            SPECS["gm"].registration(instance, port, heartbeat_period=period),
            kw.pop("credentials", None) or self.credentials(),
            transport=self.transport,
            **(options | kw),
        )

    async def get(self, instance_id: str, client_id: str = "gms") -> httpx.Response:
        """``GET /services/{id}`` as the registering client, never through the cut."""
        async with httpx.AsyncClient(transport=self.inner, base_url=URL) as http:
            token = await self.credentials(client_id).token(http)
            return await http.get(f"{SERVICES}/{instance_id}", headers={"Authorization": f"Bearer {token}"})

    async def delete(self, instance_id: str, client_id: str = "gms") -> httpx.Response:
        async with httpx.AsyncClient(transport=self.inner, base_url=URL) as http:
            token = await self.credentials(client_id).token(http)
            return await http.delete(
                f"{SERVICES}/{instance_id}", headers={"Authorization": f"Bearer {token}"}
            )

    async def status(self, instance_id: str) -> str | None:
        """REGISTERED, SUSPENDED, or None once removed."""
        response = await self.get(instance_id)
        return None if response.status_code == 404 else str(response.json()["status"])


@pytest.fixture(name="backend")
def sqlite_only() -> str:
    """The agent is tested against the registry, not the store: SQLite is enough."""
    return "sqlite"


@pytest.fixture(name="settings")
def fast_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        registry_missed_heartbeats=MISSED_HEARTBEATS,
        registry_removal_grace=REMOVAL_GRACE,
        registry_sweep_interval=0.05,
    )


@pytest.fixture(name="registry")
async def fast_registry(app: ASGIApp, provision: Provision) -> AsyncIterator[Registry]:
    harness = Registry(app, provision)
    await harness.add_client()
    yield harness
