"""A real HTTP notification receiver on a loopback socket, for callback tests (no mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgate.system.serving import _Server
from tests.live import free_port


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    """Answers every request 204 (or the next status in ``failures``) and records the ones it accepts:
    bodies POSTed to /notify in ``received``, everything in ``requests``."""

    url: str = ""
    base: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # status codes to answer first, one per request
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: Request) -> Response:
        raw = await request.body()
        if self.failures:
            return Response(status_code=self.failures.pop(0))
        body = json.loads(raw) if raw else None
        self.requests.append(Recorded(request.method, request.url.path, dict(request.headers), body))
        if request.url.path == "/notify" and body is not None:
            self.received.append(body)
        self.arrived.set()
        return Response(status_code=204)

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while not predicate(self.received):
                self.arrived.clear()
                await self.arrived.wait()
        return self.received

    async def wait_requests(self, predicate: Any, timeout: float = 10.0) -> list[Recorded]:
        async with asyncio.timeout(timeout):
            while not predicate(self.requests):
                self.arrived.clear()
                await self.arrived.wait()
        return self.requests


@contextlib.asynccontextmanager
async def running_receiver(port: int | None = None) -> AsyncIterator[Receiver]:
    """A receiver on ``port`` (a free one unless given: a test may keep a port unanswered first)."""
    receiver = Receiver()
    port = port or free_port()
    receiver.base = f"http://127.0.0.1:{port}"
    receiver.url = f"{receiver.base}/notify"
    methods = ["GET", "POST", "PUT", "DELETE"]
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=methods)])
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
