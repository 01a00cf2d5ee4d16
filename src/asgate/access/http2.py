"""The client-facing HTTP/2 connection (RFC 9113): h2c with prior knowledge, or ``h2`` chosen by ALPN.

The framing is the ``h2`` library's (sans-IO); everything after it is the HTTP/1.1 path's. Each
stream becomes an :class:`~asgate.access.exchange.Exchange` through a :class:`Stream`, which looks
to the exchange like an HTTP/1.1 client connection: the same gate, limits, priority admission and
upstream pools. The HTTP/1.1 response bytes the exchange writes are turned back into HEADERS and
DATA frames (their head is the engine's own, so a split on the blank line is enough).

Flow control both ways: a stream's request DATA is acknowledged (WINDOW_UPDATE) only while its
exchange reads on, so a slow backend slows that client stream alone; a response waits for the
client's window and, past a small buffer, stops the read from its backend.

Flood defences (each answered GOAWAY ENHANCE_YOUR_CALM and a close, the other clients unaffected):
client RST_STREAMs per window (rapid reset, CVE-2023-44487), control frames per window (PING,
SETTINGS, PRIORITY, empty DATA, tiny WINDOW_UPDATE, unknown frames), a bound on the bytes of one
header block (CONTINUATION flood, CVE-2024-27316), on the decoded header list (HPACK bomb, in
``h2``) and SETTINGS_MAX_CONCURRENT_STREAMS (the stream past it is refused with REFUSED_STREAM).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.frame_buffer
import h2.settings
from h2.errors import ErrorCodes
from hyperframe.frame import GoAwayFrame

from asgate.access.errors import Refusal, bad_request
from asgate.access.exchange import Exchange
from asgate.access.http1 import LINGER_BYTES
from asgate.access.types import Header, RequestHead
from asgate.access.validate import METHOD_NAMES, Framing, method_refusal, scan_headers, split_target
from asgate.kernel import logs
from asgate.kernel.problem import PROBLEM_JSON, Cause

if TYPE_CHECKING:
    from asgate.access.engine import Engine
    from asgate.access.upstream import UpstreamConnection

_log = logs.get("asgate.access.engine")
# RFC 9113 8.2.2: fields that only mean something on an HTTP/1.1 connection; never sent in HTTP/2.
_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te"}
)
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A response's bytes held for a client whose window is closed, before its backend read is paused.
_BUFFER = 65536
# A WINDOW_UPDATE smaller than this counts as a control frame (a flood of tiny updates makes the
# server cut its DATA into tiny frames).
_TINY_WINDOW_UPDATE = 1024
_CONNECTION_WINDOW = 1 << 20


class _HeaderFlood(h2.exceptions.ProtocolError):
    error_code = ErrorCodes.ENHANCE_YOUR_CALM


class _Frames(h2.frame_buffer.FrameBuffer):
    """h2's frame buffer with a bound on the bytes of one header block (HEADERS + CONTINUATION).

    h2 itself stops at 64 CONTINUATION frames (up to 1 MiB at the default frame size) and checks the
    decoded size only once the block is complete; this stops as soon as the block is too large."""

    def __init__(self, limit: int) -> None:
        super().__init__(server=True)
        self.limit = limit

    def _update_header_buffer(self, f: Any) -> Any:
        result = super()._update_header_buffer(f)
        pending = self._headers_buffer
        if pending and sum(len(frame.data) for frame in pending) > self.limit:
            raise _HeaderFlood("header block too large")
        return result


class _Settings(h2.settings.Settings):
    """Our SETTINGS as advertised; h2's own stream limit is twice SETTINGS_MAX_CONCURRENT_STREAMS so
    that the stream just past the limit is refused alone (REFUSED_STREAM, RFC 9113 5.1.2) by us,
    and only a client that ignores that too loses its connection."""

    @property
    def max_concurrent_streams(self) -> int:
        return 2 * int(self.get(h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS, 100))

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value: int) -> None:
        self[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = value


def _fields(raw: Any) -> tuple[dict[bytes, bytes], list[Header], list[bytes], int]:
    """Pseudo-header fields (and Host), the other fields, the cookies, the size of the head.

    h2 has validated the block (RFC 9113 8.2, 8.3: lower-case names, no connection-specific
    fields, pseudo-fields first and once, the ones a request needs)."""
    pseudo: dict[bytes, bytes] = {}
    headers: list[Header] = []
    cookies: list[bytes] = []
    size = 0
    for name, value in raw:
        size += len(name) + len(value) + 4
        if name[:1] == b":" or name == b"host":
            pseudo.setdefault(name, value)  # :scheme is not used: we know our own
        elif name == b"cookie":
            cookies.append(value)  # RFC 9113 8.2.3: joined again for HTTP/1.1
        else:
            headers.append((name, value))
    return pseudo, headers, cookies, size


class Http2(asyncio.Protocol):
    """One HTTP/2 client connection; takes over the transport from the HTTP/1.1 protocol."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop = engine.loop
        self.options = options = engine.options
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] = ("", 0)
        config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.h2 = conn = h2.connection.H2Connection(config)
        head_limit = options.max_header_bytes + options.max_url_bytes + 32 * options.max_headers
        conn.local_settings = _Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: options.h2_max_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: head_limit,
            },
        )
        conn.incoming_buffer = _Frames(2 * head_limit)
        conn.decoder.max_header_list_size = head_limit  # before the client acknowledges our SETTINGS
        self.streams: dict[int, Stream] = {}
        self.closing = False
        self.paused = False  # the client is not reading (transport buffer full)
        self.held = False
        self.deadline = 0.0  # idle connection (no stream) deadline
        self.window_start = 0.0
        self.resets = 0
        self.control = 0
        self.goaway_sent = False
        self.flush_scheduled = False
        # Streams answered before their request body ended: stream id -> bytes still read and
        # dropped (as the HTTP/1.1 lingering close), then RST_STREAM(NO_ERROR) (RFC 9113 8.1).
        self.lingering: dict[int, int] = {}

    # ------------------------------------------------------------------ taking over
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Only for ALPN ``h2``: the HTTP/1.1 protocol hands over before accepting the connection."""
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.client = (str(peer[0]), int(peer[1])) if peer else ("", 0)
        refusal = self.engine.accept(self)
        if refusal is not None:
            self.closing = True
            self.h2.initiate_connection()
            self.h2.close_connection(ErrorCodes.REFUSED_STREAM, b"too many connections")
            self.transport.write(self.h2.data_to_send())
            self.transport.close()
            return
        self._begin(b"")

    def take_over(self, transport: asyncio.Transport, client: tuple[str, int], data: bytes) -> None:
        """h2c with prior knowledge: accepted as HTTP/1.1, ``data`` (read already) starts with the preface."""
        self.transport = transport
        self.client = client
        self._begin(data)

    def _begin(self, data: bytes) -> None:
        conn = self.h2
        conn.initiate_connection()
        # 1 MiB for the connection, 64 KiB (the default) per stream: a stream whose body waits for
        # the gate or a slow backend holds its own window, and all of them at most 1 MiB.
        conn.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
        self.window_start = self.loop.time()
        self.deadline = self.window_start + self.options.header_timeout
        if data:
            self.data_received(data)
        else:
            self._flush()

    # ------------------------------------------------------------------ asyncio.Protocol
    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            # h2 has queued the GOAWAY naming the error (PROTOCOL_ERROR, ENHANCE_YOUR_CALM...).
            self.engine.metrics.engine_error(400, "HTTP2_" + ErrorCodes(exc.error_code).name)
            self._shut()
            return
        try:
            for event in events:
                self._event(event)
                if self.closing:
                    return
        except Exception:  # noqa: BLE001 - a bug must cost this connection, not the process
            _log.exception("engine error on an http/2 connection")
            self.engine.metrics.engine_error(500, Cause.SYSTEM_FAILURE)
            self.h2.close_connection(ErrorCodes.INTERNAL_ERROR)
            self._shut()
            return
        self._flush()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self.engine.release(self)
        streams, self.streams = self.streams, {}
        for stream in streams.values():
            stream.client_lost()

    def pause_writing(self) -> None:
        self.paused = True
        for stream in self.streams.values():
            stream.reading_upstream()

    def resume_writing(self) -> None:
        self.paused = False
        for stream in list(self.streams.values()):
            stream.reading_upstream()

    # ------------------------------------------------------------------ events
    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.StreamEnded):
            self.lingering.pop(event.stream_id, None)
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.request_end()
        elif isinstance(event, h2.events.StreamReset):
            self.lingering.pop(event.stream_id, None)
            if event.remote_reset:
                self.resets += 1
                self._count(0)
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.client_lost()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._shut()  # the client said GOAWAY: nothing more will come
        else:
            self._control(event)

    def _control(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.WindowUpdated):
            if event.delta is not None and event.delta < _TINY_WINDOW_UPDATE:
                self._count(1)
            self._window_opened(event.stream_id)
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._count(1)
            self._window_opened(0)
        elif isinstance(
            event,
            (
                h2.events.PingReceived,
                h2.events.PingAckReceived,  # unsolicited: we send no PING
                h2.events.PriorityUpdated,
                h2.events.UnknownFrameReceived,
            ),
        ):
            self._count(1)
        # TrailersReceived: ignored (the request goes on without them); SettingsAcknowledged etc.

    def _count(self, control: int) -> None:
        """Flood accounting per window of ``h2_flood_window`` seconds."""
        options = self.options
        now = self.loop.time()
        if now - self.window_start > options.h2_flood_window:
            self.window_start = now
            self.resets = 0
            self.control = 0
        self.control += control
        if self.resets > options.h2_max_resets or self.control > options.h2_max_control_frames:
            what = "resets" if self.resets > options.h2_max_resets else "control frames"
            _log.warning("http/2 flood", client=self.client[0], flood=what)
            self.engine.metrics.engine_error(429, "HTTP2_ENHANCE_YOUR_CALM")
            self.h2.close_connection(ErrorCodes.ENHANCE_YOUR_CALM, what.encode())
            self._shut()

    def _request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        self.deadline = 0.0
        if self.engine.draining:
            self.h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            return
        if len(self.streams) + len(self.lingering) >= self.options.h2_max_streams:
            # RFC 9113 5.1.2: a stream over SETTINGS_MAX_CONCURRENT_STREAMS; the client may retry it.
            self.h2.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
            self.resets += 1  # refused streams cost as much as reset ones
            self._count(0)
            return
        stream = Stream(self, stream_id, event.stream_ended is not None)
        self.streams[stream_id] = stream
        try:
            head, framing = self._head(stream, event.headers or [], event.stream_ended is not None)
        except Refusal as refusal:
            stream.refuse(refusal)
            return
        stream.start(head, framing)

    def _head(self, stream: Stream, raw: Any, ended: bool) -> tuple[RequestHead, Framing]:
        options = self.options
        pseudo, headers, cookies, size = _fields(raw)
        method, path = pseudo.get(b":method", b""), pseudo.get(b":path", b"")
        authority = pseudo.get(b":authority") or pseudo.get(b"host", b"")
        stream.head_only = method == b"HEAD"
        if len(headers) > options.max_headers or size > options.max_header_bytes + options.max_url_bytes:
            raise Refusal(431, Cause.INVALID_MSG_FORMAT, "the request header fields are too large")
        if len(path) > options.max_url_bytes:
            raise Refusal(414, Cause.INVALID_MSG_FORMAT, "the request target is too long")
        name = METHOD_NAMES.get(method)
        if name is None:
            raise method_refusal(method)
        if not path:
            raise bad_request("a request needs a :path")
        target_path, query = split_target(path, options.authorities)
        if cookies:
            headers.append((b"cookie", b"; ".join(cookies)))
        if authority:
            headers.append((b"host", authority))
        framing = scan_headers(headers, False)
        # The body ends with the stream; its length is known only from content-length, if sent.
        framing = replace(framing, http11=False, chunked=not ended and framing.length is None)
        return RequestHead(name, target_path, query, headers, self.client, False), framing

    def _data(self, event: h2.events.DataReceived) -> None:
        length = event.flow_controlled_length or 0
        if not event.data and event.stream_ended is None:
            self._count(1)  # an empty DATA frame carries nothing: only a flood sends many
            if self.closing:
                return
        stream_id = event.stream_id
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.body(event.data or b"", length)
            return
        left = self.lingering.get(stream_id)
        if left is None:
            return
        if left < length:
            del self.lingering[stream_id]
            with contextlib.suppress(h2.exceptions.ProtocolError):
                self.h2.reset_stream(stream_id, ErrorCodes.NO_ERROR)
            return
        self.lingering[stream_id] = left - length
        self.ack(stream_id, length)  # read and dropped: the client may send on

    def _window_opened(self, stream_id: int) -> None:
        streams = self.streams.values() if stream_id == 0 else [self.streams.get(stream_id)]
        for stream in list(streams):
            if stream is not None:
                stream.send_pending()

    # ------------------------------------------------------------------ used by streams
    def ack(self, stream_id: int, length: int) -> None:
        if length and not self.closing:
            try:
                self.h2.acknowledge_received_data(length, stream_id)
            except h2.exceptions.ProtocolError:  # the stream closed meanwhile
                return
            self.flush_soon()

    def stream_done(self, stream: Stream) -> None:
        if self.streams.get(stream.stream_id) is stream:
            del self.streams[stream.stream_id]
        if not self.streams:
            if self.engine.draining:
                self.drain()
            else:
                self.deadline = self.loop.time() + self.options.idle_timeout

    def hold(self, seconds: float) -> None:
        """As for HTTP/1.1: read nothing more from this client for about ``seconds`` (jittered)."""
        if self.held or self.transport is None:
            return
        self.held = True
        self.transport.pause_reading()
        jittered = seconds * (0.5 + random.random())  # noqa: S311 - jitter, not a secret
        self.loop.call_later(jittered, self._unhold)

    def _unhold(self) -> None:
        self.held = False
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def flush_soon(self) -> None:
        """Frames queued by streams (from backend reads) go out in one write per loop iteration."""
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _shut(self) -> None:
        """Send what h2 has queued (a GOAWAY) and close; the streams under way are abandoned."""
        if self.closing:
            return
        self._flush()
        self.closing = True
        if self.transport is not None:
            self.transport.close()

    # ------------------------------------------------------------------ timers, shutdown
    def check(self, now: float) -> None:
        """Called by the engine's sweeper every ``tick`` seconds."""
        if self.closing:
            return
        if self.deadline and now > self.deadline and not self.streams:
            # Idle (or never sent a request): RFC 9113 6.8, a graceful GOAWAY and close.
            self.h2.close_connection(ErrorCodes.NO_ERROR)
            self._shut()
            return
        for stream in list(self.streams.values()):
            stream.check(now)

    def drain(self) -> None:
        """Graceful shutdown: GOAWAY now (no new streams), close once the streams under way end."""
        if self.closing:
            return
        if not self.streams:
            self.h2.close_connection(ErrorCodes.NO_ERROR)
            self._shut()
            return
        if not self.goaway_sent and self.transport is not None:
            # Written past h2, whose state machine would send nothing more after a GOAWAY; the
            # streams up to the last one are still answered, later ones refused (``_request``).
            self.goaway_sent = True
            self._flush()
            goaway = GoAwayFrame(0, last_stream_id=max(self.streams), error_code=ErrorCodes.NO_ERROR)
            self.transport.write(goaway.serialize())

    def abort(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.abort()


class Stream:
    """One HTTP/2 stream, seen by its :class:`Exchange` as the client connection it answers on."""

    PAUSE_PIPELINE, PAUSE_BUFFER, PAUSE_UPSTREAM, PAUSE_TUNNEL, PAUSE_ERROR, PAUSE_HOLD = 1, 2, 4, 8, 16, 32

    __slots__ = (
        "conn", "stream_id", "engine", "loop", "options", "admit_nowait", "transport", "client",
        "exchange", "closing", "parser_busy", "deferred", "paused", "unacked", "head", "head_only",
        "pending", "end_pending", "request_done", "deadline", "upstream_paused", "linger_bytes",
    )  # fmt: skip

    def __init__(self, conn: Http2, stream_id: int, request_done: bool) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.engine = conn.engine
        self.loop = conn.loop
        self.options = conn.options
        self.admit_nowait = conn.engine.admit_nowait
        self.transport = self  # the exchange writes response bytes to ``conn.transport``
        self.client = conn.client
        self.exchange: Exchange | None = None
        self.closing = False
        self.parser_busy = False
        self.deferred: Exchange | None = None
        self.paused = 0
        self.unacked = 0  # request DATA received while paused: its WINDOW_UPDATE waits
        self.head: bytes | None = b""  # response head bytes until complete, then None
        self.head_only = False
        self.pending = bytearray()  # response body waiting for the client's window
        self.end_pending = False
        self.request_done = request_done
        self.deadline = self.loop.time() + self.options.idle_timeout
        self.upstream_paused = False
        self.linger_bytes = LINGER_BYTES

    # ------------------------------------------------------------------ from the connection
    def start(self, head: RequestHead, framing: Framing) -> None:
        self.exchange = exchange = Exchange(self, head, framing, False)
        exchange.start()

    def refuse(self, refusal: Refusal) -> None:
        """A request refused before any exchange (malformed, too large a head): ProblemDetails."""
        self.engine.metrics.engine_error(refusal.status, refusal.cause)
        self._respond_problem(refusal.status, refusal.problem(), refusal.headers)
        self._ended()

    def body(self, data: bytes, length: int) -> None:
        self.deadline = self.loop.time() + self.options.idle_timeout
        exchange = self.exchange
        if exchange is not None and exchange.finished:
            # Answered already (a 413, a refusal) while the body still comes: dropped, within bounds.
            self.linger_bytes -= length
            if self.linger_bytes < 0:
                self._reset(ErrorCodes.NO_ERROR)
                return
        elif exchange is not None and data:
            exchange.request_body(data)
        if self.paused and not self.closing:
            self.unacked += length
        else:
            self.conn.ack(self.stream_id, length)

    def request_end(self) -> None:
        self.request_done = True
        exchange = self.exchange
        if exchange is not None and not exchange.finished:
            exchange.request_end()

    def client_lost(self) -> None:
        self.closing = True
        exchange = self.exchange
        if exchange is not None:
            exchange.client_lost()

    def check(self, now: float) -> None:
        exchange = self.exchange
        if now > self.deadline and not self.closing:
            # No request DATA (while we read) or no response progress for idle_timeout.
            if not self.request_done and not self.paused and exchange is not None and not exchange.finished:
                self.deadline = now + self.options.idle_timeout
                exchange.fail(Refusal(408, "TIMED_OUT_REQUEST", "the request was not received in time"))
                return
            if self.pending or self.end_pending:
                self._reset(ErrorCodes.CANCEL)  # the client stopped opening its window
                return
            self.deadline = now + self.options.idle_timeout
        if exchange is not None and exchange.deadline and now > exchange.deadline:
            exchange.check(now)

    # ------------------------------------------------------------------ used by Exchange
    def write(self, data: bytes) -> None:
        if self.closing:
            return
        head = self.head
        if head is None:
            self._send_body(data)
            return
        head += data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            self.head = head
            return
        if head.startswith(_CONTINUE):
            self.head = b""
            self._headers([(b":status", b"100")], False)
            if len(head) > len(_CONTINUE):
                self.write(head[len(_CONTINUE) :])
            return
        lines = head[:end].split(b"\r\n")
        status = lines[0][9:12]
        headers: list[Header] = [(b":status", status)]
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name not in _CONNECTION_SPECIFIC:
                headers.append((name, value.strip()))
        rest = head[end + 4 :]
        if status[:1] == b"1":  # another interim response
            self.head = b""
            self._headers(headers, False)
            if rest:
                self.write(rest)
            return
        self.head = None
        self._headers(headers, False)
        if rest and not self.head_only:
            self._send_body(rest)

    def set_paused(self, reason: int, on: bool) -> None:
        self.paused = (self.paused | reason) if on else (self.paused & ~reason)
        if not self.paused and self.unacked:
            unacked, self.unacked = self.unacked, 0
            self.conn.ack(self.stream_id, unacked)

    def linger_for(self, limit: int) -> None:
        """A body over ``limit`` was refused: drop up to twice that before resetting the stream."""
        self.linger_bytes = max(LINGER_BYTES, 2 * limit)

    def hold(self, seconds: float) -> None:
        self.conn.hold(seconds)

    def send_problem(
        self, exchange: Exchange, status: int, problem: dict[str, Any], headers: list[Header]
    ) -> None:
        self._respond_problem(status, problem, headers)
        exchange.finish(status)

    def exchange_done(self, exchange: Exchange) -> None:
        self._ended()

    def start_tunnel(
        self, exchange: Exchange, upconn: UpstreamConnection, rest: bytes, max_message: int
    ) -> None:
        raise AssertionError("no WebSocket over HTTP/2 (SETTINGS_ENABLE_CONNECT_PROTOCOL is not offered)")

    def abort(self) -> None:
        """A response cut short (backend lost mid-body, timeout): this stream alone is reset."""
        self._reset(ErrorCodes.INTERNAL_ERROR)

    # ------------------------------------------------------------------ frames
    def _respond_problem(self, status: int, problem: dict[str, Any], headers: list[Header]) -> None:
        if self.closing:
            return
        if not problem:  # an answer without content (a preflight's 204), as errors.render_problem
            self.head = None
            self._headers([(b":status", b"%d" % status), *[(n.lower(), v) for n, v in headers]], False)
            return
        body = json.dumps(problem, separators=(",", ":")).encode()
        fields: list[Header] = [(b":status", b"%d" % status), (b"content-type", PROBLEM_JSON.encode())]
        fields.append((b"content-length", b"%d" % len(body)))
        fields += [(name.lower(), value) for name, value in headers]
        self.head = None
        self._headers(fields, False)
        if not self.head_only:
            self._send_body(body)

    def _headers(self, headers: list[Header], end: bool) -> None:
        try:
            self.conn.h2.send_headers(self.stream_id, headers, end_stream=end)
        except h2.exceptions.ProtocolError:
            # Closed meanwhile, or a field HTTP/2 cannot carry (from an instance): no answer.
            self._reset(ErrorCodes.INTERNAL_ERROR)
            return
        self.conn.flush_soon()

    def _send_body(self, data: bytes) -> None:
        self.deadline = self.loop.time() + self.options.idle_timeout
        self.pending += data
        self.send_pending()

    def send_pending(self) -> None:
        """Send what the client's windows allow; pause the backend read past ``_BUFFER`` held."""
        if self.closing:
            return
        h2conn = self.conn.h2
        pending = self.pending
        try:
            while pending:
                window = min(h2conn.local_flow_control_window(self.stream_id), h2conn.max_outbound_frame_size)
                if window <= 0:
                    break
                chunk = bytes(pending[:window])
                del pending[:window]
                h2conn.send_data(self.stream_id, chunk)
                self.deadline = self.loop.time() + self.options.idle_timeout
            if not pending and self.end_pending:
                self.end_pending = False
                h2conn.end_stream(self.stream_id)
                if not self.request_done:
                    self.conn.lingering[self.stream_id] = self.linger_bytes
                self.closing = True
                self.conn.stream_done(self)
        except h2.exceptions.ProtocolError:
            self.closing = True
            self.conn.stream_done(self)
            return
        finally:
            self.conn.flush_soon()
        self.reading_upstream()

    def reading_upstream(self) -> None:
        """Read on from the backend only while the client takes what we send."""
        exchange = self.exchange
        upconn = exchange.upconn if exchange is not None else None
        if upconn is None:
            return
        stop = self.conn.paused or len(self.pending) > _BUFFER
        if stop != self.upstream_paused:
            self.upstream_paused = stop
            upconn.set_reading(not stop)

    def _ended(self) -> None:
        """The exchange is over: END_STREAM once the body is out; a request body still coming is
        read and dropped within bounds (see ``Http2.lingering``)."""
        if self.closing:
            self.conn.stream_done(self)
            return
        if self.head is not None:  # no response at all (cannot happen: every path answers)
            self._reset(ErrorCodes.INTERNAL_ERROR)
            return
        self.end_pending = True
        self.send_pending()

    def _reset(self, code: ErrorCodes) -> None:
        if self.closing:
            return
        self.closing = True
        exchange = self.exchange
        if exchange is not None and not exchange.finished:
            exchange.client_lost()
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.conn.h2.reset_stream(self.stream_id, code)
        self.conn.flush_soon()
        self.conn.stream_done(self)
