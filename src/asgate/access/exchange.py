"""One request/response exchange: gate decision, upstream attempt(s), streaming both ways.

Driven by callbacks from the client connection (:mod:`asgate.access.http1`) and from the upstream
connection (:class:`~asgate.access.upstream.Sink`); no Task is created unless the gate or a new
upstream connection must be awaited.
"""

from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING

from asgate.access import headers as hdr
from asgate.access.errors import HEALTH_DRAINING, HEALTH_OK, Refusal, render_json, upstream_refusal
from asgate.access.types import Admit, Reject, RequestHead
from asgate.access.upstream import Instance, UpstreamConnection
from asgate.access.validate import Framing
from asgate.kernel import logs
from asgate.kernel.problem import Cause

if TYPE_CHECKING:
    from asgate.access.http1 import Downstream
    from asgate.access.http2 import Stream

_log = logs.get("asgate.access.engine")
# RFC 9110 9.2.2: requests that may be repeated without a different effect.
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_TOO_LARGE = "PAYLOAD_TOO_LARGE"
# Answered by the SAS itself, before the gate: no token, nothing reaches an instance. No
# appProfileIndex is ever "healthz" (indexes are numbers), so no profile path is shadowed.
HEALTH_PATH = "/healthz"
_HEALTH_ALLOW = [(b"allow", b"GET, HEAD")]


class Exchange:
    __slots__ = (
        "conn", "head", "framing", "close_after", "admit", "body", "body_size", "body_done",
        "streaming", "replayable", "instance", "upconn", "tried", "attempts", "status", "started",
        "chunked_out", "upstream_keep", "deadline", "finished", "out", "fresh",
    )  # fmt: skip

    def __init__(
        self, conn: Downstream | Stream, head: RequestHead, framing: Framing, close_after: bool
    ) -> None:
        self.conn = conn
        self.head = head
        self.framing = framing
        self.close_after = close_after
        self.admit: Admit | None = None
        self.body: list[bytes] = []  # request body received but not yet sent upstream
        self.body_size = 0
        self.body_done = not framing.chunked and not framing.length
        self.streaming = False  # body chunks go straight to the upstream connection
        self.replayable = True  # the whole request can be sent again (a retry)
        self.instance: Instance | None = None
        self.upconn: UpstreamConnection | None = None
        self.tried: list[Instance] = []
        self.attempts = 0
        self.status = 0
        self.started = False  # response head written to the client
        self.chunked_out = False
        self.upstream_keep = False
        self.deadline = 0.0  # upstream deadline (0: none)
        self.finished = False
        self.out: list[bytes] = []
        self.fresh = False  # the next attempt must not reuse a pooled connection

    # ------------------------------------------------------------------ gate
    def start(self) -> None:
        if self.head.path == HEALTH_PATH:
            self._health()
            return
        fast = self.conn.admit_nowait
        if fast is not None:
            try:
                decision = fast(self.head)
            except Exception:  # noqa: BLE001 - a gate bug must not kill the connection
                _log.exception("gate failed", path=self.head.path)
                self._refuse(Refusal(500, Cause.SYSTEM_FAILURE, "internal error"))
                return
            if decision is not None:
                self._decided(decision)
                return
        task = self.conn.engine.spawn(self.conn.engine.gate.admit(self.head))
        task.add_done_callback(self._gate_done)

    def _health(self) -> None:
        """``GET /healthz``: 200 while serving, 503 once draining (a load balancer stops sending)."""
        self.close_after = self.close_after or not self.body_done
        method = self.head.method
        if method not in ("GET", "HEAD"):
            self._refuse(Refusal(405, Cause.METHOD_NOT_ALLOWED, "only GET and HEAD", _HEALTH_ALLOW))
            return
        conn = self.conn
        draining = conn.engine.draining
        status = 503 if draining else 200
        close = self.close_after = self.close_after or draining
        conn.write(render_json(status, HEALTH_DRAINING if draining else HEALTH_OK, close, method == "HEAD"))
        self.finish(status)

    def _gate_done(self, task: asyncio.Task[Admit | Reject]) -> None:
        if task.cancelled():
            self._refuse(Refusal(503, Cause.NF_CONGESTION, "the server is shutting down"))
            return
        exc = task.exception()
        if exc is not None:
            _log.error("gate failed", path=self.head.path, error=type(exc).__name__)
            self._refuse(Refusal(500, Cause.SYSTEM_FAILURE, "internal error"))
            return
        decision = task.result()
        if self.finished:  # the client went away while the gate was deciding
            if isinstance(decision, Admit) and decision.on_done is not None:
                decision.on_done(0)
            return
        self._decided(decision)

    def _decided(self, decision: Admit | Reject) -> None:
        if isinstance(decision, Reject):
            # The body of a refused request is never read: unless there is none, the connection closes.
            self.close_after = self.close_after or not self.body_done
            problem = decision.problem
            if decision.hold > 0:
                self.conn.hold(decision.hold)
            self.conn.send_problem(self, decision.status, problem, decision.headers)
            return
        self.admit = decision
        length = self.framing.length
        if (length is not None and length > decision.max_body) or self.body_size > decision.max_body:
            self.conn.linger_for(decision.max_body)
            self._refuse(Refusal(413, _TOO_LARGE, f"the body exceeds {decision.max_body} bytes"))
            return
        if self.framing.expect_continue and not self.body_done and not self.body:
            # RFC 9110 10.1.1: the client waits for this before sending the body.
            self.conn.write(_CONTINUE)
        if not self.body_done and self.conn.parser_busy:
            # Decided in the middle of a read: the rest of that read (body bytes, maybe over the
            # limit) is looked at before any backend is contacted.
            self.conn.deferred = self
            return
        self._connect()

    def proceed(self) -> None:
        if not self.finished:
            self._connect()

    # ------------------------------------------------------------------ upstream attempts
    def _connect(self) -> None:
        admit = self.admit
        assert admit is not None
        pool = admit.pool
        loop = self.conn.loop
        instance = pool.pick(loop.time(), self.tried) if self.attempts < pool.options.max_attempts else None
        if instance is None:
            self._refuse(upstream_refusal(502 if self.tried else 503))
            return
        self.instance = instance
        self.attempts += 1
        idle = instance.idle
        while idle and not self.fresh:  # an idle keep-alive connection first
            conn = idle.pop()
            if not conn.closed:
                self._send(conn)
                return
        task = self.conn.engine.spawn(pool.connect(instance))
        task.add_done_callback(functools.partial(self._connected, instance))

    def _connected(self, instance: Instance, task: asyncio.Task[UpstreamConnection]) -> None:
        admit = self.admit
        assert admit is not None
        now = self.conn.loop.time()
        failed = task.cancelled() or task.exception() is not None
        if self.instance is not instance:
            # The exchange ended while connecting (and settled its accounting): keep the connection.
            if not failed:
                admit.pool.keep(task.result(), now)
            return
        if failed:
            # Connect refused or timed out: nothing was sent, so any method may go elsewhere.
            admit.pool.report(instance, False, now)
            admit.pool.done(instance, None, False, now)
            self.conn.engine.metrics.upstream_failure(admit.pool.name, "connect")
            self.tried.append(instance)
            self.instance = None
            self._connect()
            return
        self._send(task.result())

    def _send(self, upconn: UpstreamConnection) -> None:
        admit = self.admit
        assert admit is not None
        self.upconn = upconn
        head = self.head
        framing = self.framing
        data = hdr.request_head(
            head.method,
            admit,
            head.headers,
            framing.connection_names,
            client_ip=head.client[0],
            scheme=self.conn.engine.options.scheme,
            length=framing.length,
            chunked=framing.chunked,
            websocket=head.upgrade,
            host=None if framing.hosts else upconn.instance.endpoint.authority,
        )
        parts = [data]
        for chunk in self.body:
            parts += self._frame(chunk)
        if self.body_done:
            if framing.chunked:
                parts.append(b"0\r\n\r\n")
            self.deadline = self.conn.loop.time() + admit.pool.options.response_timeout
        else:
            self.body = []  # streamed from now on: a retry could not send it again
            self.replayable = False
            self.streaming = True
            self.conn.set_paused(self.conn.PAUSE_BUFFER, False)
        # UpstreamConnection.send, inlined on the hot path.
        upconn.sink = self
        upconn.received = False
        upconn.head_only = head.method == "HEAD"
        upconn.transport.write(b"".join(parts))  # type: ignore[union-attr]

    def _frame(self, chunk: bytes) -> list[bytes]:
        if self.framing.chunked:
            return [b"%x\r\n" % len(chunk), chunk, b"\r\n"]
        return [chunk]

    # ------------------------------------------------------------------ request body (from the client)
    def request_body(self, data: bytes) -> None:
        if self.finished:
            return
        self.body_size += len(data)
        admit = self.admit
        if admit is not None and self.body_size > admit.max_body:
            self._too_large(admit.max_body)
            return
        if self.streaming:
            assert self.upconn is not None
            self.upconn.write(b"%x\r\n%b\r\n" % (len(data), data) if self.framing.chunked else data)
        else:
            self.body.append(data)
            if self.body_size > 65536:
                self.conn.set_paused(self.conn.PAUSE_BUFFER, True)

    def request_end(self) -> None:
        self.body_done = True
        if self.streaming and self.upconn is not None:
            if self.framing.chunked:
                self.upconn.write(b"0\r\n\r\n")
            assert self.admit is not None
            self.deadline = self.conn.loop.time() + self.admit.pool.options.response_timeout

    def _too_large(self, limit: int) -> None:
        self.close_after = True
        if self.started:
            self.abort()
            return
        self._drop_upstream(reusable=False)
        self.conn.linger_for(limit)
        self._refuse(Refusal(413, _TOO_LARGE, f"the body exceeds {limit} bytes"))

    # ------------------------------------------------------------------ response (Sink)
    def upstream_head(self, status: int, conn: UpstreamConnection) -> None:
        admit, instance = self.admit, self.instance
        assert admit is not None and instance is not None
        if status == 101 and not self.head.upgrade:
            self._drop_upstream(reusable=False)  # RFC 9110 15.2.2: only in answer to an Upgrade
            self._refuse(upstream_refusal(502))
            return
        if instance.failures:
            admit.pool.report(instance, True, 0.0)
        self.status = status
        self.upstream_keep = conn.keep_alive
        parts, length = hdr.response_head(status, conn.headers, admit, admit.pool.authorities)
        parts += [self._response_framing(status, length), b"\r\n"]
        self.out = parts
        self.started = True

    def _response_framing(self, status: int, length: bytes | None) -> bytes:
        if status == 101:
            return b"connection: upgrade\r\nupgrade: websocket\r\n"
        if self.head.upgrade:
            self.close_after = True  # the client's parser state is past an upgrade request
        # A response that starts before the request body has ended leaves the rest of that body
        # unread on the connection (RFC 9112 9.3): close rather than guess where it ends.
        close = self.close_after or not self.body_done or self.conn.engine.draining
        self.close_after = close
        lines: list[bytes] = []
        if self.head.method == "HEAD" or status in (204, 304) or status < 200:
            # RFC 9110 8.6: HEAD and 304 may carry the length the GET would have had.
            if length is not None:
                lines.append(b"content-length: " + length + b"\r\n")
        else:
            if length is not None:
                lines.append(b"content-length: " + length + b"\r\n")
            elif self.framing.http11:
                self.chunked_out = True
                lines.append(b"transfer-encoding: chunked\r\n")
            else:
                close = self.close_after = True  # RFC 9112 6.3 (8): HTTP/1.0 ends it by closing
        if close:
            lines.append(b"connection: close\r\n")
        elif not self.framing.http11:
            lines.append(b"connection: keep-alive\r\n")
        return b"".join(lines)

    def upstream_body(self, data: bytes) -> None:
        if self.chunked_out:
            self.out += [b"%x\r\n" % len(data), data, b"\r\n"]
        else:
            self.out.append(data)

    def upstream_flush(self) -> None:
        """End of one read from the backend: pass it on in one write, restart the read timer."""
        out = self.out
        if out:
            conn = self.conn
            if not conn.closing:
                conn.transport.write(b"".join(out))  # type: ignore[union-attr]
            self.out = []
        if self.admit is not None:
            self.deadline = self.conn.loop.time() + self.admit.pool.options.read_timeout

    def upstream_end(self) -> None:
        out = self.out
        if self.chunked_out:
            out.append(b"0\r\n\r\n")
        if out:
            conn = self.conn
            if not conn.closing:
                conn.transport.write(b"".join(out))  # type: ignore[union-attr]
            self.out = []
        self.deadline = 0.0
        # A backend that answered before the whole request body arrived leaves both connections
        # out of step (RFC 9112 9.3): neither can be reused.
        reusable = self.upstream_keep and self.body_done
        self.close_after = self.close_after or not self.body_done
        self._drop_upstream(reusable)
        self.finish(self.status)

    def upstream_upgraded(self, rest: bytes) -> None:
        self.upstream_flush()
        upconn, admit, instance = self.upconn, self.admit, self.instance
        assert upconn is not None and admit is not None and instance is not None
        self.upconn = None
        self.deadline = 0.0
        admit.pool.done(instance, None, False, self.conn.loop.time())
        self.conn.start_tunnel(self, upconn, rest, admit.max_ws_message)

    def upstream_lost(self, conn: UpstreamConnection) -> None:
        admit, instance = self.admit, self.instance
        assert admit is not None and instance is not None
        now = self.conn.loop.time()
        self.upconn = None
        self.instance = None
        admit.pool.done(instance, None, False, now)
        if self.started:
            self.abort()  # mid-response: the client sees a truncated response, never a spliced one
            return
        stale = conn.served > 0 and not conn.received
        # The classic keep-alive race: the backend closed an idle connection as we reused it.
        # Its other idle connections are likely just as stale: retry on a new one.
        self.fresh = stale
        if not stale:
            admit.pool.report(instance, False, now)
            self.tried.append(instance)
        self.conn.engine.metrics.upstream_failure(admit.pool.name, "stale" if stale else "lost")
        # RFC 9110 9.2.2: only idempotent requests may be sent again after they may have arrived.
        if not conn.received and self.replayable and self.body_done and self.head.method in IDEMPOTENT:
            self._connect()
        else:
            self._refuse(upstream_refusal(502))

    def upstream_paused(self, paused: bool) -> None:
        self.conn.set_paused(self.conn.PAUSE_UPSTREAM, paused)
        if not self.body_done and self.admit is not None:
            # A backend that stops reading the body must resume within read_timeout.
            self.deadline = self.conn.loop.time() + self.admit.pool.options.read_timeout if paused else 0.0

    # ------------------------------------------------------------------ timers, endings
    def check(self, now: float) -> None:
        if self.deadline and now > self.deadline and not self.finished:
            admit, instance = self.admit, self.instance
            if admit is not None and instance is not None and not self.started:
                admit.pool.report(instance, False, now)
                self.conn.engine.metrics.upstream_failure(admit.pool.name, "timeout")
                self._drop_upstream(reusable=False)
                self._refuse(upstream_refusal(504))
            else:
                self.abort()

    def _drop_upstream(self, reusable: bool) -> None:
        admit, instance, upconn = self.admit, self.instance, self.upconn
        self.upconn = self.instance = None
        if admit is not None and instance is not None:
            admit.pool.done(instance, upconn, reusable, self.conn.loop.time())

    def _refuse(self, refusal: Refusal) -> None:
        self.close_after = self.close_after or not self.body_done or refusal.status == 413
        self.conn.engine.metrics.engine_error(refusal.status, refusal.cause)
        headers = refusal.headers
        if self.admit is not None and self.admit.refusal_headers:
            headers = [*headers, *self.admit.refusal_headers]
        self.conn.send_problem(self, refusal.status, refusal.problem(), headers)

    def fail(self, refusal: Refusal) -> None:
        """The client broke the protocol inside this request (bad chunk, body timeout)."""
        if self.finished:
            return
        if self.started:
            self.abort()
            return
        self.close_after = True
        self._drop_upstream(reusable=False)
        self._refuse(refusal)

    def abort(self) -> None:
        """Give up on both sides at once (truncated response, timeout mid-body)."""
        self._drop_upstream(reusable=False)
        self.close_after = True
        self.conn.abort()  # first: an HTTP/2 stream must be reset, not ended as if complete
        self.finish(0)

    def client_lost(self) -> None:
        if not self.finished:
            self._drop_upstream(reusable=False)
            self.finish(0)

    def finish(self, status: int) -> None:
        """Called once per exchange: accounting, then the connection moves on."""
        if self.finished:
            return
        self.finished = True
        admit = self.admit
        if admit is not None and admit.on_done is not None:
            try:
                admit.on_done(status)
            except Exception:  # noqa: BLE001 - accounting must not break the connection
                _log.exception("on_done failed")
        self.conn.exchange_done(self)
