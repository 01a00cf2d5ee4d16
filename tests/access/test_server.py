"""Listeners: graceful shutdown in-process, and worker processes sharing one port."""

from __future__ import annotations

import asyncio
import json

from asgate.access.server import AccessServer
from tests.access.conftest import Raw, Sas, request


async def test_stop_finishes_requests_under_way_and_closes_idle_connections(sas: Sas) -> None:
    port = sas.port
    idle = await Raw.open(port)
    await idle.send(b"GET /1/echo HTTP/1.1\r\nhost: s\r\n\r\n")
    assert (await idle.response())[0] == 200
    busy = asyncio.create_task(request(sas.port, "/1/slow?s=0.4"))
    await asyncio.sleep(0.1)
    stopping = asyncio.create_task(sas.server.stop(grace=3.0))
    await asyncio.sleep(0.05)
    assert await idle.closed(timeout=1.0)  # the idle keep-alive connection went at once
    status, headers, _ = await busy
    assert status == 200 and headers["connection"] == "close"
    await asyncio.wait_for(stopping, 3.0)
    await idle.close()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except OSError:
        return
    writer.close()
    raise AssertionError("still accepting after stop")


async def test_stop_gives_up_on_requests_past_the_grace(sas: Sas) -> None:
    busy = asyncio.create_task(request(sas.port, "/1/slow?s=5"))
    await asyncio.sleep(0.1)
    started = asyncio.get_running_loop().time()
    await sas.server.stop(grace=0.3)
    assert asyncio.get_running_loop().time() - started < 1.5
    try:
        await busy
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    assert sas.gate.done == [0]


async def test_two_servers_cannot_share_a_port_by_accident() -> None:
    first = AccessServer(gate=None)  # type: ignore[arg-type]
    await first.start("127.0.0.1", 0)
    second = AccessServer(gate=None)  # type: ignore[arg-type]
    try:
        await second.start("127.0.0.1", first.port)
        clash = False
    except OSError:
        clash = True
    await first.stop()
    await second.stop()
    assert clash


async def test_healthz_answers_503_once_the_server_is_draining(sas: Sas) -> None:
    client = await Raw.open(sas.port)
    await client.send(b"GET /healthz HTTP/1.1\r\nhost: sas\r\n")  # a request on its way in
    await asyncio.sleep(0.05)
    stopping = asyncio.create_task(sas.server.stop(grace=2.0))
    await asyncio.sleep(0.05)
    await client.send(b"\r\n")
    status, headers, body = await client.response()
    assert status == 503 and json.loads(body) == {"status": "draining"}
    assert headers["connection"] == "close"
    assert await client.closed()
    await client.close()
    await asyncio.wait_for(stopping, 3.0)
