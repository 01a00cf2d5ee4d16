"""Fixtures for the sample MC services: in-process clients, and real servers on 127.0.0.1."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from asgate.client import SasKeys, verify_sas_assertion
from asgate.client.assertion import TYP
from asgate.idm.keys import KeyRing
from asgate.samples import SPECS, SamplesHandle, run_samples

ISSUER = "http://asgate.test/sas"
# One key ring for the session: the samples trust its JWKS, as they trust the IdM's behind a SAS.
_RING: list[KeyRing] = []


@pytest.fixture(scope="session", autouse=True)
def sas_ring(tmp_path_factory: pytest.TempPathFactory) -> KeyRing:
    ring = KeyRing(Path(tmp_path_factory.mktemp("sas-keys")))
    ring.ensure()
    _RING[:] = [ring]
    return ring


def sas_keys() -> SasKeys:
    return SasKeys(jwks=_RING[0].jwks())


def assertion(user: str, app: str = "console-1", priority: str | None = None, **claims: object) -> str:
    """An assertion as the SAS signs it, for every sample's pool at once (aud is a list)."""
    now = int(time.time())
    body: dict[str, object] = {
        "iss": ISSUER,
        "aud": [spec.audience for spec in SPECS.values()],
        "sub": user,
        "client_id": app,
        "mcptt_id": user,
        "iat": now,
        "exp": now + 30,
        "jti": secrets.token_urlsafe(8),
        **({"priority": priority} if priority else {}),
        **claims,
    }
    return _RING[0].sign(body, typ=TYP)


def as_user(user: str, app: str = "console-1", **extra: str) -> dict[str, str]:
    """The headers the SAS adds to a request it forwards for ``user`` via ``app``."""
    token = assertion(user, app, extra.get("Resource-Priority"))
    return {"Asgate-Assertion": token, "Asgate-MC-Service-Id": user, "Asgate-Application": app, **extra}


InProcess = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def in_process() -> AsyncIterator[InProcess]:
    """``make(name)``: a client for a fresh instance ``<name>-1`` of a sample, in-process."""
    clients: list[httpx.AsyncClient] = []
    keys = sas_keys()

    def make(name: str) -> httpx.AsyncClient:
        spec = SPECS[name]

        async def verify(conn: object) -> object:
            return await verify_sas_assertion(conn, keys, issuer=ISSUER, audience=spec.audience)

        sample = spec.create(f"{name}-1", spec.new_state(), verify)  # type: ignore[arg-type]
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sample.app), base_url="http://sample")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def samples() -> AsyncIterator[SamplesHandle]:
    """Every sample on its own free port (GM twice), not registered anywhere."""
    handle = await run_samples(
        None, None, ["gm", "gm", "cm", "mcdata", "mcptt"], base_port=0, sas_keys=sas_keys(), sas_issuer=ISSUER
    )
    async with handle:
        yield handle
