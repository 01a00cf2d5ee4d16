"""WebSocket tunnelling after a 101, with the message size enforced from frame headers.

Payloads are relayed untouched (never unmasked); :class:`FrameScanner` reads only the RFC 6455 5.2
frame headers to add up each message's length across continuation frames. A message over the
limit is never forwarded: the relay stops at that frame's header, both ends get a Close with
status 1009 (RFC 6455 7.4.1, "message too big") and the connections are closed. Sizes are those on
the wire: with permessage-deflate (RFC 7692) negotiated they are the compressed sizes.

When the MC service's side goes away without a Close of its own (the instance closed the TCP
connection or it failed), the client gets a Close with status 1011 rather than a bare end of stream
(1006); frames from the service that break RFC 6455 close the client's side with 1014 ("bad
gateway"). A Close can only go between frames: a stream cut in the middle of a frame just ends.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, cast

from asgate.access.upstream import UpstreamConnection

if TYPE_CHECKING:
    from asgate.access.exchange import Exchange
    from asgate.access.http1 import Downstream

TOO_BIG = 1009
PROTOCOL_ERROR = 1002
INTERNAL_ERROR = 1011  # RFC 6455 7.4.1: an unexpected condition (here: the service went away)
BAD_GATEWAY = 1014  # IANA WebSocket Close Code registry: an invalid response from upstream


class FrameScanner:
    """Follows the frames of one direction; ``feed`` tells where a violation starts, if any."""

    __slots__ = ("max_message", "masked", "header", "remaining", "message", "closed")

    def __init__(self, max_message: int, masked: bool) -> None:
        self.max_message = max_message
        self.masked = masked  # RFC 6455 5.1: client-to-server frames are masked, the others not
        self.header = bytearray()
        self.remaining = 0  # payload bytes of the current frame still to pass
        self.message = 0  # payload bytes of the current (possibly fragmented) message
        self.closed = False  # a Close frame has passed

    @property
    def at_boundary(self) -> bool:
        return not self.remaining and not self.header

    def feed(self, data: bytes) -> tuple[int, int] | None:
        """``None`` if all of ``data`` may pass, else (offset of the bad frame, close code).

        The offset is negative when the bad frame's header began in an earlier chunk.
        """
        pos, size = 0, len(data)
        while pos < size:
            if self.remaining:
                step = min(self.remaining, size - pos)
                self.remaining -= step
                pos += step
                continue
            start = pos - len(self.header)
            need = self._header_size()
            take = min(need - len(self.header), size - pos)
            self.header += data[pos : pos + take]
            pos += take
            if len(self.header) < self._header_size():
                continue
            code = self._frame()
            if code:
                return start, code
        return None

    def _header_size(self) -> int:
        if len(self.header) < 2:
            return 2
        second = self.header[1]
        size = 2 + {126: 2, 127: 8}.get(second & 0x7F, 0)
        return size + 4 if second & 0x80 else size

    def _frame(self) -> int:
        header = self.header
        opcode = header[0] & 0x0F
        masked = bool(header[1] & 0x80)
        length = header[1] & 0x7F
        if length == 126:
            length = int.from_bytes(header[2:4], "big")
        elif length == 127:
            length = int.from_bytes(header[2:10], "big")
        self.header = bytearray()
        self.remaining = length
        if masked != self.masked:
            return PROTOCOL_ERROR
        if opcode >= 8:
            if opcode == 8:
                self.closed = True
            # RFC 6455 5.5: control frames carry at most 125 bytes and are never fragmented.
            return PROTOCOL_ERROR if length > 125 else 0
        # RFC 6455 5.4: a text/binary frame starts a message, continuation frames (0) extend it.
        self.message = length if opcode else self.message + length
        return TOO_BIG if self.message > self.max_message else 0


def close_frame(code: int, masked: bool) -> bytes:
    payload = code.to_bytes(2, "big")
    if not masked:
        return b"\x88\x02" + payload
    key = os.urandom(4)
    return b"\x88\x82" + key + bytes(b ^ key[i] for i, b in enumerate(payload))


class _BackendSide(asyncio.Protocol):
    def __init__(self, tunnel: Tunnel) -> None:
        self.tunnel = tunnel

    def data_received(self, data: bytes) -> None:
        self.tunnel.from_backend(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.tunnel.backend_lost()

    def pause_writing(self) -> None:
        self.tunnel.client.pause_reading()

    def resume_writing(self) -> None:
        if not self.tunnel.ended:
            self.tunnel.client.resume_reading()


class Tunnel:
    """Relays frames between the client transport and the backend connection."""

    def __init__(
        self, client: asyncio.Transport, backend: UpstreamConnection, max_message: int, exchange: Exchange
    ) -> None:
        self.client = client
        self.backend = backend
        self.exchange = exchange
        self.ended = False
        self.upward = FrameScanner(max_message, masked=True)
        self.downward = FrameScanner(max_message, masked=False)
        backend.become_tunnel(_BackendSide(self))

    def from_client(self, data: bytes) -> None:
        if self.ended:
            return
        bad = self.upward.feed(data)
        if bad is None:
            self.backend.write(data)
        else:
            self.backend.write(data[: max(bad[0], 0)])
            code = bad[1]
            self._violation(
                code, client_code=code, client_clean=self.downward.at_boundary, backend_clean=bad[0] >= 0
            )

    def from_backend(self, data: bytes) -> None:
        if self.ended:
            return
        bad = self.downward.feed(data)
        if bad is None:
            self.client.write(data)
        else:
            self.client.write(data[: max(bad[0], 0)])
            code = bad[1]
            self._violation(
                code,
                client_code=BAD_GATEWAY if code == PROTOCOL_ERROR else code,
                client_clean=bad[0] >= 0,
                backend_clean=self.upward.at_boundary,
            )

    def _violation(self, code: int, *, client_code: int, client_clean: bool, backend_clean: bool) -> None:
        # A Close can only go between frames; a stream caught mid-frame is just closed.
        if client_clean:
            self.client.write(close_frame(client_code, masked=False))
        if backend_clean:
            self.backend.write(close_frame(code, masked=True))
        self.end()

    def client_write_paused(self, paused: bool) -> None:
        self.backend.set_reading(not paused)

    def client_lost(self) -> None:
        self.end()

    def backend_lost(self) -> None:
        """The service closed its connection or failed: unless it said goodbye itself, say 1011."""
        if self.ended:
            return
        downward = self.downward
        if not downward.closed and downward.at_boundary:
            self.client.write(close_frame(INTERNAL_ERROR, masked=False))
        self.end()

    def end(self) -> None:
        if self.ended:
            return
        self.ended = True
        self.backend.close()
        # Half-close and linger (as after a refusal): the client's answering Close is read and
        # dropped by the connection (within its bounds), not answered with a reset.
        conn = cast("Downstream", self.exchange.conn)  # WebSockets are HTTP/1.1 only
        conn.tunnel = None
        conn.close()
        self.exchange.finish(101)
