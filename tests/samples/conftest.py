"""Fixtures for the sample MC services: in-process clients, and real servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from asgate.samples import SPECS, SamplesHandle, run_samples


def as_user(user: str, app: str = "console-1", **extra: str) -> dict[str, str]:
    """The headers the SAS adds to a request it forwards for ``user`` via ``app``."""
    return {"Asgate-MC-Service-Id": user, "Asgate-Application": app, **extra}


InProcess = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def in_process() -> AsyncIterator[InProcess]:
    """``make(name)``: a client for a fresh instance ``<name>-1`` of a sample, in-process."""
    clients: list[httpx.AsyncClient] = []

    def make(name: str) -> httpx.AsyncClient:
        spec = SPECS[name]
        sample = spec.create(f"{name}-1", spec.new_state())
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=sample.app), base_url="http://sample")
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture
async def samples() -> AsyncIterator[SamplesHandle]:
    """Every sample on its own free port (GM twice), not registered anywhere."""
    handle = await run_samples(None, None, ["gm", "gm", "cm", "mcdata", "mcptt"], base_port=0)
    async with handle:
        yield handle
