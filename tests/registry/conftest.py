"""Registry fixtures: an MC service server, an external application and an administrator, each a real
OAuth2 client with a real token, and a sample GM registration."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

import asgate.registry
from asgate.domain.registry import Version
from asgate.kernel.settings import Settings
from asgate.registry.approvals import PoolScripts
from asgate.registry.lifecycle import Liveness
from asgate.registry.scripts import Context, Scripts
from asgate.system.runtime import Runtime
from tests.conftest import Mint, Provision, bearer
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


# Issue 8 item 1: the pools each service client is provisioned to serve.
SERVICE_POOLS = {"gms-1": ("GM/*", "CM/*"), "gms-2": ("GM/*", "CM/*")}
# ...and the pools whose description the administrator approved before the tests register them:
# gm_registration()'s resources (a test that widens beyond them sees its change pending).
APPROVED_POOLS = ("GM/gms", "GM/gms-west", "GM/other", "GM/sds", "CM/cms")


@pytest.fixture
async def service_clients(provision: Provision, rt: Runtime) -> None:
    """The service clients provisioned for their pools, and the administrator's pre-approval of
    gm_registration()'s description for APPROVED_POOLS (as `asgate clients add` and the
    mcx-registry-admin pool interface PUT would)."""
    for client_id, patterns in SERVICE_POOLS.items():
        await provision(client_id, scopes=(SCOPES[client_id],), service_pools=patterns)
    versions = [Version.model_validate(v) for v in gm_registration()["versions"]]
    await approve_interfaces(rt, APPROVED_POOLS, versions)


async def approve_interfaces(rt: Runtime, pools: Sequence[str], versions: list[Version]) -> None:
    now = time.time()
    for pool in pools:
        service_type, _, service_name = pool.partition("/")
        item = (service_type, service_name)
        await rt.store.write(
            functools.partial(_SCRIPTS.put_pool_interface, actor="ops", pool=item, versions=versions, now=now)
        )


_SCRIPTS = PoolScripts(Scripts(Context(liveness=Liveness(3, 1.0), sas_url="http://sas", api_root="http://t")))


@pytest.fixture
def tokens(mint: Mint, service_clients: None) -> dict[str, str]:
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
