"""A small real HTTP/1.1 backend for the engine tests (h11 over asyncio streams, 127.0.0.1).

It records every request it completely received and every connection it accepted, and answers by
the first path segment after ``/api``: ``echo`` (default), ``big``, ``chunked``, ``slow``,
``redirect``, ``leaky``, ``eof``, ``early``, ``flood``, ``drop-reused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import h11


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


@dataclass
class Backend:
    name: str = "b1"
    requests: list[Seen] = field(default_factory=list)
    connections: int = 0
    body_bytes: int = 0  # request body bytes received, complete requests or not
    flood_written: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> Backend:
        """Listen on 127.0.0.1 (HTTPS with the server context ``tls``)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and cut every connection (a crashed instance)."""
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        conn = h11.Connection(h11.SERVER)
        served = 0
        try:
            while True:
                seen = await self._read_request(conn, reader)
                if seen is None:
                    return
                if urlsplit(seen.target).path.startswith("/api/drop-reused") and served:
                    return  # a keep-alive connection the server dropped as the request came in
                self.requests.append(seen)
                await self._respond(conn, writer, seen)
                served += 1
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError):
            return
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _read_request(self, conn: h11.Connection, reader: asyncio.StreamReader) -> Seen | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return None
                continue
            if isinstance(event, h11.Request):
                request = event
                path = urlsplit(event.target.decode()).path
                if path.startswith("/api/early"):
                    return Seen(event.method.decode(), event.target.decode(), _headers(event.headers), b"")
            elif isinstance(event, h11.Data):
                body += event.data
                self.body_bytes += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                return Seen(
                    request.method.decode(), request.target.decode(), _headers(request.headers), bytes(body)
                )
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _respond(self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen) -> None:
        parts = seen.path.split("/")
        kind = parts[2] if len(parts) > 2 and seen.path.startswith("/api/") else "echo"
        query = {k: v[0] for k, v in parse_qs(urlsplit(seen.target).query).items()}
        handler = getattr(self, "_on_" + kind.replace("-", "_"), self._on_echo)
        await handler(conn, writer, seen, query)

    async def _send(
        self,
        conn: h11.Connection,
        writer: asyncio.StreamWriter,
        status: int,
        headers: list[tuple[str, str]],
        *bodies: bytes,
    ) -> None:
        writer.write(conn.send(h11.Response(status_code=status, headers=headers)) or b"")
        for body in bodies:
            writer.write(conn.send(h11.Data(data=body)) or b"")
            await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()) or b"")
        await writer.drain()

    async def _on_echo(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen, q: dict[str, str]
    ) -> None:
        body = json.dumps(
            {
                "backend": self.name,
                "method": seen.method,
                "target": seen.target,
                "headers": seen.headers,
                "bodyLength": len(seen.body),
                "bodySha256": hashlib.sha256(seen.body).hexdigest(),
            }
        ).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        await self._send(conn, writer, 200, headers, body if seen.method != "HEAD" else b"")

    async def _on_big(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen, q: dict[str, str]
    ) -> None:
        size = int(q.get("size", "1000000"))
        block = bytes(range(256)) * 256
        chunks = [block[: min(len(block), size - i)] for i in range(0, size, len(block))]
        await self._send(conn, writer, 200, [("content-length", str(size))], *chunks)

    async def _on_chunked(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen, q: dict[str, str]
    ) -> None:
        count, size = int(q.get("n", "5")), int(q.get("size", "1000"))
        bodies = [b"x" * size] * count if seen.method != "HEAD" else []
        await self._send(conn, writer, 200, [("content-type", "text/plain")], *bodies)

    async def _on_slow(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen, q: dict[str, str]
    ) -> None:
        await asyncio.sleep(float(q.get("s", "0.5")))
        await self._on_echo(conn, writer, seen, q)

    async def _on_redirect(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen, q: dict[str, str]
    ) -> None:
        location = f"http://127.0.0.1:{self.port}/api/next?x=1"
        await self._send(conn, writer, 302, [("location", location), ("content-length", "0")])

    async def _on_leaky(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen, q: dict[str, str]
    ) -> None:
        headers = [
            ("server", "internal-gms/1.2 (10.0.0.7)"),
            ("via", "1.1 gms-node-7"),
            ("x-powered-by", "Express"),
            ("connection", "x-internal"),
            ("x-internal", "node-7"),
            ("x-kept", "yes"),
            ("content-length", "2"),
        ]
        await self._send(conn, writer, 200, headers, b"ok")

    async def _on_eof(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen, q: dict[str, str]
    ) -> None:
        # RFC 9112 6.3 (8): no length, no chunking: the body ends when the connection closes.
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil-close-body")
        await writer.drain()
        writer.close()
        raise ConnectionError("closed by design")

    async def _on_head_body(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen, q: dict[str, str]
    ) -> None:
        # A broken backend: content after the head of its answer to HEAD (RFC 9110 9.3.2 forbids it).
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
        await writer.drain()
        writer.close()
        raise ConnectionError("closed by design")

    async def _on_early(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen, q: dict[str, str]
    ) -> None:
        writer.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 4\r\n\r\nnope")
        await writer.drain()
        await asyncio.sleep(0.2)
        raise ConnectionError("answered before the body")

    async def _on_flood(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, seen: Seen, q: dict[str, str]
    ) -> None:
        size = int(q.get("size", str(64 << 20)))
        block = b"f" * 65536
        writer.write(conn.send(h11.Response(status_code=200, headers=[("content-length", str(size))])) or b"")
        while self.flood_written < size:
            writer.write(conn.send(h11.Data(data=block)) or b"")
            self.flood_written += len(block)
            await writer.drain()
        writer.write(conn.send(h11.EndOfMessage()) or b"")

    _on_drop_reused = _on_echo


def _headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in headers:
        key = name.decode().lower()
        result[key] = f"{result[key]}, {value.decode()}" if key in result else value.decode()
    return result
