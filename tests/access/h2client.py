"""A raw HTTP/2 client for tests: the ``h2`` library as a client plus raw frames (hyperframe), and
the server's frames as they arrive, for what no client library sends or shows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h2.config
import h2.connection
import hpack
from hyperframe.frame import Frame, GoAwayFrame, HeadersFrame


class Attacker:
    """An HTTP/2 client connection sending what it likes and reading the server's frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.buffer = bytearray()
        self.decoder = hpack.Decoder()
        self.received: list[Frame] = []
        self.closed = False

    @classmethod
    async def open(cls, port: int) -> Attacker:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        attacker = cls(reader, writer)
        await attacker.send()
        return attacker

    async def send(self, raw: bytes = b"") -> None:
        self.writer.write(self.h2.data_to_send() + raw)
        try:
            await self.writer.drain()
        except ConnectionError:
            self.closed = True

    def request(self, path: str, *, end: bool = True, method: str = "GET") -> int:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [(":method", method), (":path", path), (":scheme", "http"), (":authority", "sas")]
        self.h2.send_headers(stream_id, headers, end_stream=end)
        return stream_id

    async def until(self, done: Callable[[Frame], bool], timeout: float = 5.0) -> Frame | None:
        """Read frames until one satisfies ``done`` (returned) or the server closes (None)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(bytes(self.buffer[:9])))
                if len(self.buffer) < 9 + length:
                    break
                frame.parse_body(memoryview(bytes(self.buffer[9 : 9 + length])))
                del self.buffer[: 9 + length]
                self.received.append(frame)
                if done(frame):
                    return frame
            try:
                data = await asyncio.wait_for(self.reader.read(65536), deadline - loop.time())
            except (ConnectionError, TimeoutError):
                data = b""
            if not data:
                self.closed = True
                return None
            self.buffer += data

    async def goaway(self, timeout: float = 5.0) -> int | None:
        frame = await self.until(lambda f: isinstance(f, GoAwayFrame), timeout)
        return frame.error_code if isinstance(frame, GoAwayFrame) else None

    def status(self, stream_id: int) -> int | None:
        for frame in self.received:
            if isinstance(frame, HeadersFrame) and frame.stream_id == stream_id:
                fields = dict(self.decoder.decode(frame.data, raw=True))
                return int(fields[b":status"])
        return None

    def close(self) -> None:
        self.writer.transport.abort()
