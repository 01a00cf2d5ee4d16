"""Fixtures for the SAS engine: real backends, a real engine on 127.0.0.1, a raw client.

The test gate maps ``/1/<rest>`` to ``/api/<rest>`` on its pool (as the real gate maps
``/{appProfileIndex}/x`` to ``{apiPrefix}/x``) and refuses paths under ``/deny``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from asgate.access.options import EngineOptions, PoolOptions
from asgate.access.server import AccessServer
from asgate.access.types import Admit, Header, Reject, RequestHead
from asgate.access.upstream import Endpoint, UpstreamPool
from asgate.kernel.problem import problem_body
from tests.access.backend import Backend

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis() -> AsyncIterator[aioredis.Redis]:
    """A connection to the local Redis (the test is skipped, saying why, if none answers)."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({exc}); .ci/run starts redis-server")
    try:
        yield client
    finally:
        await client.aclose()


async def delete_matching(client: aioredis.Redis, pattern: str) -> None:
    keys = [key async for key in client.scan_iter(match=pattern)]
    if keys:
        await client.delete(*keys)


@dataclass
class TestGate:
    pool: UpstreamPool
    asynchronous: bool = False
    max_body: int = 1 << 20
    max_ws_message: int = 1 << 20
    response_headers: list[Header] = field(default_factory=list)
    heads: list[RequestHead] = field(default_factory=list)
    done: list[int] = field(default_factory=list)

    def admit_nowait(self, head: RequestHead) -> Admit | Reject | None:
        return None if self.asynchronous else self._decide(head)

    async def admit(self, head: RequestHead) -> Admit | Reject:
        await asyncio.sleep(0.01)
        return self._decide(head)

    def _decide(self, head: RequestHead) -> Admit | Reject:
        self.heads.append(head)
        if head.path.startswith("/deny"):
            problem = problem_body(403, "ACCESS_TOKEN_DENIED", "not in the profile")
            return Reject(403, problem, [(b"www-authenticate", b'Bearer error="insufficient_scope"')])
        rest = head.path.split("/", 2)[2] if head.path.count("/") >= 2 else ""
        return Admit(
            self.pool,
            f"/api/{rest}" + (f"?{head.query}" if head.query else ""),
            set_request_headers=[(b"x-mc-user", b"alice@mc.example")],
            drop_request_headers=frozenset({b"authorization"}),
            set_response_headers=list(self.response_headers),
            location_rewrite=("/api", "/1"),
            max_body=self.max_body,
            max_ws_message=self.max_ws_message,
            on_done=self.done.append,
        )


@dataclass
class Sas:
    server: AccessServer
    gate: TestGate
    pool: UpstreamPool
    backends: list[Backend]

    @property
    def port(self) -> int:
        return self.server.port


FAST = EngineOptions(header_timeout=0.6, idle_timeout=0.8, tick=0.05, shutdown_grace=2.0)
FAST_POOL = PoolOptions(connect_timeout=0.5, response_timeout=1.0, read_timeout=1.0, eject_seconds=5.0)


@pytest.fixture
async def make_sas() -> AsyncIterator[Callable[..., Awaitable[Sas]]]:
    """Start an engine in front of ``backends`` fresh backends; everything stops after the test."""
    started: list[Sas] = []

    async def make(
        backends: int = 1, options: EngineOptions = FAST, pool_options: PoolOptions = FAST_POOL, **gate: Any
    ) -> Sas:
        live = [await Backend(name=f"b{i + 1}").start() for i in range(backends)]
        pool = UpstreamPool("gm", [Endpoint(b.name, "127.0.0.1", b.port) for b in live], pool_options)
        test_gate = TestGate(pool, **gate)
        server = AccessServer(test_gate, options)
        await server.start("127.0.0.1", 0)
        sas = Sas(server, test_gate, pool, live)
        started.append(sas)
        return sas

    yield make
    for made in started:
        await made.server.stop(grace=0.5)
        made.pool.close()
        for backend in made.backends:
            await backend.stop()


@pytest.fixture
async def sas(make_sas: Callable[..., Awaitable[Sas]]) -> Sas:
    return await make_sas()


class Raw:
    """A client speaking raw bytes, for what well-behaved clients never send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Raw:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(
        self, timeout: float = 3.0, head_only: bool = False
    ) -> tuple[int, dict[str, str], bytes]:
        """One response (Content-Length, chunked, or until close); none after a HEAD (RFC 9112 6.3)."""
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if head_only:
            body = b""
        elif "content-length" in headers:
            body = await asyncio.wait_for(self.reader.readexactly(int(headers["content-length"])), timeout)
        elif headers.get("transfer-encoding") == "chunked":
            body = await asyncio.wait_for(self._chunks(), timeout)
        elif status in (101, 204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await asyncio.wait_for(self.reader.read(), timeout)
        return status, headers, body

    async def _chunks(self) -> bytes:
        body = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")
                return bytes(body)
            body += await self.reader.readexactly(size)
            await self.reader.readexactly(2)

    async def closed(self, timeout: float = 3.0) -> bool:
        """Whether the server closes the connection (EOF or reset) within ``timeout``."""
        try:
            return await asyncio.wait_for(self.reader.read(65536), timeout) == b""
        except ConnectionError:
            return True
        except TimeoutError:
            return False

    def abort(self) -> None:
        """Drop the connection and whatever is still unsent."""
        self.writer.transport.abort()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def request(
    port: int, target: str, method: str = "GET", headers: str = "", body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One request on a connection of its own."""
    client = await Raw.open(port)
    try:
        length = f"content-length: {len(body)}\r\n" if body or method in ("POST", "PUT") else ""
        await client.send(f"{method} {target} HTTP/1.1\r\nhost: sas\r\n{headers}{length}\r\n".encode() + body)
        return await client.response()
    finally:
        await client.close()


@pytest.fixture
async def raw(sas: Sas) -> AsyncIterator[Callable[[], Awaitable[Raw]]]:
    opened: list[Raw] = []

    async def connect() -> Raw:
        client = await Raw.open(sas.port)
        opened.append(client)
        return client

    yield connect
    for client in opened:
        await client.close()
