"""Registry fixtures: an MC service server, an external application and an administrator, each a real
OAuth2 client with a real token, and a sample GM registration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import asgate.registry
from asgate.settings import Settings
from tests.conftest import Mint, bearer
from tests.receiver import Receiver, running_receiver

DOCS = Path(asgate.registry.__file__).parent / "openapi"
SERVICES = "/mcx-service-registration/v1/services"
REGISTRY = "/mcx-registry/v1"
ADMIN = "/mcx-registry-admin/v1"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Fast retries and sweeps, so that retry and liveness behaviour shows within a test."""
    return make_settings(
        registry_retry_base=0.05,
        registry_retry_max=0.4,
        registry_sweep_interval=0.05,
        registry_removal_grace=0.5,
    )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as started:
        yield started


def gm_registration(port: int = 9101, name: str = "gms", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "serviceType": "GM",
        "serviceName": name,
        "interfaces": [
            {
                "referencePoint": "CSC-2",
                "protocol": "HTTP",
                "ipv4Addr": "127.0.0.1",
                "port": port,
                "apiPrefix": "/gm",
            }
        ],
        "versions": [
            {
                "apiVersion": "v1",
                "resources": [
                    {
                        "resourceName": "groups",
                        "uri": "/groups",
                        "commType": "REQUEST_RESPONSE",
                        "operations": ["GET", "POST"],
                    },
                    {
                        "resourceName": "members",
                        "uri": "/groups/{group}/members",
                        "commType": "REQUEST_RESPONSE",
                        "operations": ["GET", "PUT"],
                    },
                ],
            }
        ],
        "environment": {"region": "north"},
        "heartbeatPeriod": 10,
    }
    body.update(overrides)
    return body


SCOPES = {
    "gms-1": "mcx-service-registration",
    "gms-2": "mcx-service-registration",
    "console-1": "mcx-registry",
    "console-2": "mcx-registry",
    "ops": "mcx-registry-admin",
    "sas": "mcx-access-profiles",
}


@pytest.fixture
def tokens(mint: Mint) -> dict[str, str]:
    return {client_id: mint(client_id, scope) for client_id, scope in SCOPES.items()}


async def register(http: httpx.AsyncClient, token: str, body: dict[str, Any]) -> httpx.Response:
    return await http.post(SERVICES, json=body, headers=bearer(token))


async def admin_app(http: httpx.AsyncClient, ops: str, client_id: str, **spec: Any) -> httpx.Response:
    body = {"trustDomain": "UNTRUSTED", "allowedServices": [{"serviceType": "GM"}], **spec}
    return await http.put(f"{ADMIN}/apps/{client_id}", json=body, headers=bearer(ops))


async def admin_grant(
    http: httpx.AsyncClient, ops: str, app_id: str, user: str, **body: Any
) -> httpx.Response:
    return await http.put(f"{ADMIN}/grants/{app_id}/{user}", json=body, headers=bearer(ops))
