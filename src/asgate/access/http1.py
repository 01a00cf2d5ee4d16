"""The client-facing HTTP/1.1 connection: parsing (httptools), limits, keep-alive, pipelining.

One :class:`Downstream` per client connection. Requests are parsed as they arrive; each becomes an
:class:`~asgate.access.exchange.Exchange`, answered strictly in order (RFC 9112 9.3.2: pipelined
responses are sent in the order of the requests); reading pauses while a later request waits.
Any protocol error is answered once, after the responses already owed, and closes the connection.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from asgate.access.errors import Refusal, bad_request, render_problem
from asgate.access.exchange import Exchange
from asgate.access.types import Header, RequestHead
from asgate.access.upstream import UpstreamConnection
from asgate.access.validate import METHOD_NAMES, method_refusal, scan_headers, split_target
from asgate.kernel import logs
from asgate.kernel.problem import Cause

if TYPE_CHECKING:
    from typing import Any

    from asgate.access.engine import Engine
    from asgate.access.websocket import Tunnel

_log = logs.get("asgate.access.engine")
# Parser states of a connection; NEW until its first read (which may be the HTTP/2 preface).
IDLE, HEAD, BODY, WAIT, NEW = range(5)
# A closing connection still reads and discards what the client sends (nginx's lingering close),
# so that a client still sending its request reads the refusal instead of a reset: for at most
# LINGER_SECONDS, and at most LINGER_BYTES, or twice the body limit after a 413 (the client may
# send the whole body before reading).
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 << 20


def _refusal_of(cause: BaseException | None) -> Refusal:
    """What a parser callback raised: our own refusal, or a bug (logged, answered 500)."""
    if isinstance(cause, Refusal):
        return cause
    _log.error("engine error while parsing", exc_info=cause)
    return Refusal(500, Cause.SYSTEM_FAILURE, "internal error")


class Downstream(asyncio.Protocol):
    PAUSE_PIPELINE, PAUSE_BUFFER, PAUSE_UPSTREAM, PAUSE_TUNNEL, PAUSE_ERROR, PAUSE_HOLD = 1, 2, 4, 8, 16, 32

    __slots__ = (
        "engine", "loop", "transport", "parser", "client", "state", "deadline", "head_bytes", "url",
        "headers", "read_size", "parsing", "active", "pipeline", "paused", "closing", "error",
        "tunnel", "pre_tunnel", "options", "admit_nowait", "lingering", "discarded", "deferred",
        "parser_busy", "linger_bytes",
    )  # fmt: skip

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop = engine.loop
        self.options = engine.options
        self.admit_nowait = engine.admit_nowait
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client: tuple[str, int] = ("", 0)
        self.state = NEW
        self.deadline = 0.0
        self.head_bytes = 0
        self.url = b""
        self.headers: list[Header] = []
        self.read_size = 0  # bytes in the read being parsed
        self.parsing: Exchange | None = None  # receiving its body
        self.active: Exchange | None = None  # producing its response
        self.pipeline: deque[Exchange] = deque()
        self.paused = 0
        self.closing = False
        self.error: Refusal | None = None
        self.tunnel: Tunnel | None = None
        self.pre_tunnel = b""
        self.lingering = False
        self.discarded = 0  # bytes read and dropped after an error or while closing
        self.deferred: Exchange | None = None  # admitted inside a read: proceeds after that read
        self.parser_busy = False
        self.linger_bytes = LINGER_BYTES

    # ------------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        if self.options.http2:
            tls = transport.get_extra_info("ssl_object")
            if tls is not None and tls.selected_alpn_protocol() == "h2":
                self._http2(None)  # RFC 9113 3.2: "h2" chosen by ALPN, HTTP/2 from the first byte
                return
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        refusal = self.engine.accept(self)
        if refusal is not None:
            self.closing = True
            transport.write(render_problem(refusal.status, refusal.problem(), refusal.headers, close=True))
            transport.close()
            return
        self.deadline = self.loop.time() + self.options.header_timeout

    def data_received(self, data: bytes) -> None:  # noqa: C901 - the hot path, kept inline
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        if self.closing or self.error is not None:
            self.discarded += len(data)
            if self.discarded > self.linger_bytes and self.transport is not None:
                self.transport.abort()
            return
        state = self.state
        if state == IDLE:
            self.state = state = HEAD
            self.deadline = self.loop.time() + self.options.header_timeout
        elif state == NEW:
            # RFC 9113 3.3: prior knowledge; the preface starts with a method HTTP/1.1 never accepts.
            if data[:4] == b"PRI " and self.options.http2:
                self._http2(data)
                return
            self.state = state = HEAD
        if state == HEAD:
            self.head_bytes += len(data)
        self.read_size = len(data)
        self.parser_busy = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgrade(data[exc.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            self.protocol_error(_refusal_of(exc.__context__))
        except httptools.HttpParserError as exc:
            # llhttp's reason names the defect in the client's own request (never a backend).
            self.protocol_error(bad_request(f"malformed request: {str(exc)[:80]}"))
        finally:
            self.parser_busy = False
        if self.error is None and not self.closing:
            deferred = self.deferred
            if deferred is not None:
                self.deferred = None
                deferred.proceed()
            options = self.options
            if self.state == HEAD and self.head_bytes > options.max_header_bytes + options.max_url_bytes:
                self.protocol_error(Refusal(431, Cause.INVALID_MSG_FORMAT, "the request head is too large"))

    def eof_received(self) -> bool:
        # A client that closes its side is taken as gone (as nginx does by default): the request
        # under way is abandoned and its backend connection freed, which matters under overload.
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.engine.release(self)
        if self.tunnel is not None:
            self.tunnel.client_lost()
        active = self.active
        if active is not None:
            active.client_lost()
        self.pipeline.clear()

    def pause_writing(self) -> None:
        self._peer_reading(False)

    def resume_writing(self) -> None:
        self._peer_reading(True)

    def _peer_reading(self, on: bool) -> None:
        if self.tunnel is not None:
            self.tunnel.client_write_paused(not on)
        elif self.active is not None and self.active.upconn is not None:
            self.active.upconn.set_reading(on)

    # ------------------------------------------------------------------ httptools callbacks
    def on_message_begin(self) -> None:
        if self.state != HEAD:
            self.state = HEAD
            self.deadline = self.loop.time() + self.options.header_timeout
        self.url = b""
        self.headers = []

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.options.max_url_bytes:
            # RFC 9112 3: a server that receives a request-target longer than it wishes to parse: 414.
            raise Refusal(414, Cause.INVALID_MSG_FORMAT, "the request target is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # Sizes are checked once the head is complete; until then data_received bounds the bytes.
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.closing:
            return
        parser = self.parser
        options = self.options
        headers = self.headers
        # The head cannot be larger than the bytes read for it: only count when that could be too many.
        if len(headers) > options.max_headers or (
            self.head_bytes + self.read_size > options.max_header_bytes
            and sum(len(n) + len(v) + 4 for n, v in headers) > options.max_header_bytes
        ):
            # RFC 6585 5: Request Header Fields Too Large.
            raise Refusal(431, Cause.INVALID_MSG_FORMAT, "the request header fields are too large")
        raw_method = parser.get_method()
        method = METHOD_NAMES.get(raw_method)
        if method is None:
            raise method_refusal(raw_method)
        path, query = split_target(self.url, options.authorities)
        http11 = parser.get_http_version() == "1.1"
        framing = scan_headers(headers, http11)
        upgrade = framing.websocket and method == "GET"
        close = framing.close or (not http11 and not framing.keep_alive)
        head = RequestHead(method, path, query, self.headers, self.client, upgrade)
        exchange = Exchange(self, head, framing, close)
        self.parsing = exchange
        self.state = BODY
        self.head_bytes = 0
        if not exchange.body_done:
            self.deadline = self.loop.time() + options.idle_timeout
        if self.active is None:
            self.active = exchange
            exchange.start()
        else:
            self.pipeline.append(exchange)
            self.set_paused(self.PAUSE_PIPELINE, True)

    def on_body(self, data: bytes) -> None:
        exchange = self.parsing
        if exchange is not None:
            exchange.request_body(data)
            self.deadline = self.loop.time() + self.options.idle_timeout

    def on_message_complete(self) -> None:
        exchange, self.parsing = self.parsing, None
        if exchange is not None:
            exchange.request_end()
        if self.active is None and not self.pipeline:
            self._idle()
        else:
            self.state = WAIT
            self.deadline = 0.0

    # ------------------------------------------------------------------ used by Exchange
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closing:
            self.transport.write(data)

    def set_paused(self, reason: int, on: bool) -> None:
        old = self.paused
        self.paused = new = (old | reason) if on else (old & ~reason)
        transport = self.transport
        if transport is None or self.closing or bool(old) == bool(new):
            return
        if new:
            transport.pause_reading()
        else:
            transport.resume_reading()

    def linger_for(self, limit: int) -> None:
        """A body over ``limit`` was refused: drain up to twice that before giving up on the client."""
        self.linger_bytes = max(LINGER_BYTES, 2 * limit)

    def hold(self, seconds: float) -> None:
        """Read nothing more from this client for about ``seconds`` (see ``Reject.hold``).

        Jittered (0.5 to 1.5 x): connections refused in the same burst must not all come back in the
        same instant (measured: without jitter, the synchronized resumption of 256 flooding
        connections raised another application's p99 from 2 to 25 ms)."""
        if not self.paused & self.PAUSE_HOLD:
            self.set_paused(self.PAUSE_HOLD, True)
            jittered = seconds * (0.5 + random.random())  # noqa: S311 - jitter, not a secret
            self.loop.call_later(jittered, self.set_paused, self.PAUSE_HOLD, False)

    def send_problem(
        self, exchange: Exchange, status: int, problem: dict[str, Any], headers: list[Header]
    ) -> None:
        close = exchange.close_after = exchange.close_after or self.engine.draining
        self.write(
            render_problem(status, problem, headers, close=close, head_only=exchange.head.method == "HEAD")
        )
        exchange.finish(status)

    def exchange_done(self, exchange: Exchange) -> None:
        if exchange is not self.active:
            return
        self.active = None
        if exchange.close_after or self.engine.draining:
            self.close()
        elif self.pipeline:
            following = self.pipeline.popleft()
            self.active = following
            if not self.pipeline:
                self.set_paused(self.PAUSE_PIPELINE, False)
            # Not inline: a run of refused pipelined requests must not recurse.
            self.loop.call_soon(self._start, following)
        elif self.error is not None:
            self._answer_error()
        elif self.state == WAIT:
            self.state = IDLE
            self.head_bytes = 0
            self.deadline = self.loop.time() + self.options.idle_timeout

    def _start(self, exchange: Exchange) -> None:
        if not self.closing:
            exchange.start()

    def start_tunnel(
        self, exchange: Exchange, upconn: UpstreamConnection, rest: bytes, max_message: int
    ) -> None:
        from asgate.access.websocket import Tunnel

        assert self.transport is not None
        self.tunnel = tunnel = Tunnel(self.transport, upconn, max_message, exchange)
        self.deadline = 0.0
        self.set_paused(self.PAUSE_TUNNEL, False)
        if rest:
            tunnel.from_backend(rest)
        pending, self.pre_tunnel = self.pre_tunnel, b""
        if pending:
            tunnel.from_client(pending)

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """Close after what is written, lingering: FIN first, then discard what the client still
        sends for a moment, so a refusal is read rather than lost to a reset (RFC 9112 9.6)."""
        if self.closing:
            return
        self.closing = True
        transport = self.transport
        if transport is None:
            return
        if self.paused:
            self.paused = 0
            transport.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
            self.lingering = True
            self.deadline = self.loop.time() + LINGER_SECONDS
        else:
            transport.close()

    # ------------------------------------------------------------------ errors, timers, shutdown
    def protocol_error(self, refusal: Refusal) -> None:
        """Answer ``refusal`` after the responses already owed, then close."""
        self.error = refusal
        self.set_paused(self.PAUSE_ERROR, True)
        exchange = self.parsing
        if exchange is not None and not exchange.body_done:
            self.parsing = None
            if exchange in self.pipeline:
                self.pipeline.remove(exchange)
            elif exchange is self.active:
                exchange.fail(refusal)  # the error is inside this request's own body
                return
        if self.active is None:
            self._answer_error()

    def _answer_error(self) -> None:
        refusal = self.error
        assert refusal is not None
        self.engine.metrics.engine_error(refusal.status, refusal.cause)
        self.write(render_problem(refusal.status, refusal.problem(), refusal.headers, close=True))
        self.close()

    def _upgrade(self, rest: bytes) -> None:
        exchange = self.pipeline[-1] if self.pipeline else self.active  # the request just parsed
        if exchange is not None and exchange.head.upgrade:
            # RFC 9110 7.8: after the 101 the bytes belong to the new protocol; hold them.
            self.pre_tunnel = rest
            self.set_paused(self.PAUSE_TUNNEL, True)
            return
        # Another Upgrade (h2c...): ignored, the request was handled as plain HTTP/1.1.
        self.parser = httptools.HttpRequestParser(self)
        if rest:
            self.data_received(rest)

    def _http2(self, data: bytes | None) -> None:
        """Hand the transport over to an HTTP/2 protocol: ``data`` read already (prior knowledge), or
        None (ALPN, before the connection was accepted: HTTP/2 accepts it itself)."""
        from asgate.access.http2 import Http2

        transport = self.transport
        assert transport is not None
        self.closing = True  # this object is done with the connection
        protocol = Http2(self.engine)
        transport.set_protocol(protocol)
        if data is None:
            protocol.connection_made(transport)
        else:
            self.engine.replace(self, protocol)
            protocol.take_over(transport, self.client, data)

    def _idle(self) -> None:
        self.state = IDLE
        self.head_bytes = 0
        self.deadline = self.loop.time() + self.options.idle_timeout
        if self.engine.draining:
            self.close()

    def check(self, now: float) -> None:
        """Called by the engine's sweeper every ``tick`` seconds."""
        if self.lingering:
            if now > self.deadline and self.transport is not None:
                self.transport.close()
            return
        if self.deadline and now > self.deadline and not self.closing and self.error is None:
            if self.paused and self.state == BODY:
                # We stopped reading (backpressure): the client is not the slow one.
                self.deadline = now + self.options.idle_timeout
                return
            self.deadline = 0.0
            if self.state in (IDLE, NEW) or (
                self.state == HEAD and not self.head_bytes and self.active is None
            ):
                self.close()  # RFC 9112 9.5: idle keep-alive connections may be closed at any time
            else:
                self.protocol_error(Refusal(408, "TIMED_OUT_REQUEST", "the request was not received in time"))
        active = self.active
        if active is not None and active.deadline and now > active.deadline:
            active.check(now)

    def drain(self) -> None:
        """Graceful shutdown: close now if idle, else after the response under way."""
        if self.active is None and self.tunnel is None and (self.state == IDLE or not self.head_bytes):
            self.close()
