"""Local health checks for :class:`asgate.client.ServiceAgent`: async callables answering
"is the service I speak for able to serve?". While one answers ``False`` the agent stops
heartbeating, so the registry suspends the instance and the SAS stops sending it requests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import httpx

HealthCheck = Callable[[], Awaitable[bool]]


def http_health_check(
    url: str, *, timeout: float = 2.0, transport: httpx.AsyncBaseTransport | None = None
) -> HealthCheck:
    """Healthy while ``GET url`` answers 2xx within ``timeout`` seconds (redirects not followed)."""

    async def check() -> bool:
        try:
            async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
                return (await http.get(url)).is_success
        except httpx.HTTPError:
            return False

    return check


def tcp_health_check(host: str, port: int, *, timeout: float = 2.0) -> HealthCheck:
    """Healthy while ``host:port`` accepts a TCP connection within ``timeout`` seconds."""

    async def check() -> bool:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    return check
