"""Backend instance pools: keep-alive connections, balancing, passive ejection.

One :class:`UpstreamPool` holds the instances of one MC service. The registry may change it at any
time (:meth:`UpstreamPool.update`, :meth:`UpstreamPool.suspend`): a removed or suspended instance
gets no new request, while requests already on it finish on their connection.

Balancing is least outstanding requests, ties broken round-robin. An instance that fails
``eject_after`` times in a row (connect refused or timed out, connection lost before a response,
response timeout) is ejected for ``eject_seconds``; when every instance is ejected the pool uses
them anyway (better a likely failure than a certain one).
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Protocol, cast

import httptools

from asgate.access.options import PoolOptions, upstream_tls
from asgate.kernel import logs

Header = tuple[bytes, bytes]
_log = logs.get("asgate.access.upstream")
_NO_BODY_STATUS = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    host: str
    port: int
    tls: bool = False  # registered as HTTPS or WSS: the SAS connects with TLS (PoolOptions.tls)

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host.lower()}:{self.port}"


class Instance:
    __slots__ = ("endpoint", "outstanding", "failures", "ejected_until", "suspended", "removed", "idle")

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.outstanding = 0
        self.failures = 0
        self.ejected_until = 0.0
        self.suspended = False
        self.removed = False
        self.idle: list[UpstreamConnection] = []

    def __repr__(self) -> str:
        return f"Instance({self.endpoint.id!r}, outstanding={self.outstanding})"


class Sink(Protocol):
    """Who receives one response from an :class:`UpstreamConnection`."""

    def upstream_head(self, status: int, conn: UpstreamConnection) -> None: ...
    def upstream_body(self, data: bytes) -> None: ...
    def upstream_end(self) -> None: ...
    def upstream_upgraded(self, rest: bytes) -> None: ...
    def upstream_lost(self, conn: UpstreamConnection) -> None: ...
    def upstream_paused(self, paused: bool) -> None: ...
    def upstream_flush(self) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection to an instance; serves one request at a time."""

    __slots__ = (
        "pool", "instance", "transport", "parser", "sink", "served", "received", "head_only",
        "closed", "idle_since", "headers", "keep_alive", "_interim", "_until_close", "_head_done", "_tunnel",
    )  # fmt: skip

    def __init__(self, pool: UpstreamPool, instance: Instance) -> None:
        self.pool = pool
        self.instance = instance
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.sink: Sink | None = None
        self.served = 0  # responses completed on this connection
        self.received = False  # any byte of the current response
        self.head_only = False  # the current request is HEAD: no body follows the head
        self.closed = False
        self.idle_since = 0.0
        # The current response head as received (names not lower-cased), read in upstream_head.
        self.headers: list[Header] = []
        self.keep_alive = False  # llhttp's verdict on the current response
        self._interim = False
        self._until_close = False
        self._head_done = False
        # Set after a 101: raw bytes go to this callable instead of the parser.
        self._tunnel: asyncio.Protocol | None = None

    # -- used by the exchange (which also sets sink, received and head_only before each request)
    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def set_reading(self, on: bool) -> None:
        if self.transport is not None and not self.closed:
            (self.transport.resume_reading if on else self.transport.pause_reading)()

    def become_tunnel(self, protocol: asyncio.Protocol) -> None:
        self.sink = None
        self._tunnel = protocol

    def close(self) -> None:
        self.sink = None
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel.data_received(data)
            return
        sink = self.sink
        if sink is None:  # bytes on an idle connection: the backend is confused; drop it
            self.close()
            self.pool.forget(self)
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            sink, self.sink = self.sink, None
            if sink is not None:
                sink.upstream_upgraded(data[exc.args[0] :])
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc, httptools.HttpParserCallbackError):
                _log.error("engine error on a response", exc_info=exc.__context__)
            self._lost()  # a malformed response: the backend is treated as failed
            return
        if self._head_done and self.head_only:
            # RFC 9110 9.3.2: a response to HEAD has no content whatever its framing says.
            self.parser = httptools.HttpResponseParser(self)
            self.on_message_complete()
        elif self.sink is sink:
            sink.upstream_flush()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._tunnel is not None:
            self._tunnel.connection_lost(exc)
            return
        self._lost()

    def pause_writing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.pause_writing()
        elif self.sink is not None:
            self.sink.upstream_paused(True)

    def resume_writing(self) -> None:
        if self._tunnel is not None:
            self._tunnel.resume_writing()
        elif self.sink is not None:
            self.sink.upstream_paused(False)

    # -- httptools callbacks
    def on_message_begin(self) -> None:
        self.headers = []
        self._head_done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200 and status != 101:
            self._interim = True  # RFC 9110 15.2: 1xx are interim; the final response follows
            return
        self._head_done = True
        # RFC 9112 6.3 (8): no length and not chunked: the body ends when the connection closes
        # (llhttp then never calls it keep-alive, so only such responses need the look).
        self.keep_alive = keep_alive = self.parser.should_keep_alive()
        if not keep_alive and not self.head_only and status not in _NO_BODY_STATUS:
            self._until_close = not any(
                n.lower() in (b"content-length", b"transfer-encoding") for n, _ in self.headers
            )
        if self.sink is not None:
            self.sink.upstream_head(status, self)

    def on_body(self, data: bytes) -> None:
        if self.head_only:
            # RFC 9110 9.3.2: content after the head of an answer to HEAD is the backend's error;
            # dropped, and where its message ends is a guess: the connection is not used again.
            if not self.closed:
                self.closed = True
                if self.transport is not None:
                    self.transport.close()
            return
        if self.sink is not None:
            self.sink.upstream_body(data)

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        if self._head_done and self._tunnel is None and self.parser.get_status_code() == 101:
            return
        self.served += 1
        self._head_done = False
        sink, self.sink = self.sink, None
        if sink is not None:
            sink.upstream_end()

    def _lost(self) -> None:
        sink, self.sink = self.sink, None
        self.close()
        if sink is None:
            self.pool.forget(self)
        elif self._until_close and self._head_done:
            sink.upstream_end()
        else:
            sink.upstream_lost(self)


class UpstreamPool:
    """The instances of one MC service and their idle keep-alive connections."""

    def __init__(
        self, name: str, endpoints: Iterable[Endpoint] = (), options: PoolOptions | None = None
    ) -> None:
        self.name = name
        self.options = options or PoolOptions()
        self.instances: dict[str, Instance] = {}
        self.authorities: frozenset[str] = frozenset()
        self._rr = itertools.count()
        self._sweeper: asyncio.TimerHandle | None = None
        self._default_tls: ssl.SSLContext | None = None
        self.update(endpoints)

    # -- the registry's side
    def update(self, endpoints: Iterable[Endpoint]) -> None:
        """Make ``endpoints`` the pool's instances; in-flight requests on removed ones finish."""
        wanted = {e.id: e for e in endpoints}
        for key, instance in list(self.instances.items()):
            if wanted.get(key) != instance.endpoint:
                instance.removed = True
                self._close_idle(instance)
                del self.instances[key]
        for key, endpoint in wanted.items():
            if key not in self.instances:
                self.instances[key] = Instance(endpoint)
        self.authorities = frozenset(i.endpoint.authority for i in self.instances.values())

    def suspend(self, instance_id: str, suspended: bool = True) -> None:
        instance = self.instances.get(instance_id)
        if instance is not None:
            instance.suspended = suspended
            if suspended:
                self._close_idle(instance)

    # -- the engine's side
    def pick(self, now: float, tried: Collection[Instance] = ()) -> Instance | None:
        """The usable instance with the fewest outstanding requests (round-robin on ties)."""
        if len(self.instances) == 1 and not tried:
            (only,) = self.instances.values()
            if not only.suspended:
                only.outstanding += 1
                return only
        candidates = [i for i in self.instances.values() if not i.suspended and i not in tried]
        if not candidates:
            return None
        healthy = [i for i in candidates if i.ejected_until <= now] or candidates
        start = next(self._rr) % len(healthy)
        best = healthy[start]
        for offset in range(1, len(healthy)):
            candidate = healthy[(start + offset) % len(healthy)]
            if candidate.outstanding < best.outstanding:
                best = candidate
        best.outstanding += 1
        return best

    async def connect(self, instance: Instance) -> UpstreamConnection:
        loop = asyncio.get_running_loop()
        endpoint = instance.endpoint
        resolve = self.options.resolve
        # The instance address policy, applied to the address connected to (an fqdn may resolve
        # into a denied range long after it was registered): a refusal is a failed connect.
        host = endpoint.host
        if resolve is not None:
            host = await asyncio.wait_for(resolve(host, endpoint.port), self.options.connect_timeout)
        context = self._tls() if endpoint.tls else None
        _, conn = await asyncio.wait_for(
            loop.create_connection(
                lambda: UpstreamConnection(self, instance),
                host,
                endpoint.port,
                ssl=context,
                # the certificate is checked against the registered name, not the address it resolved to
                server_hostname=endpoint.host if context is not None else None,
            ),
            self.options.connect_timeout,  # the TLS handshake included
        )
        return conn

    def _tls(self) -> ssl.SSLContext:
        if self.options.tls is not None:
            return self.options.tls
        if self._default_tls is None:
            self._default_tls = upstream_tls(None)
        return self._default_tls

    def done(self, instance: Instance, conn: UpstreamConnection | None, reusable: bool, now: float) -> None:
        """The request on ``instance`` is over; keep ``conn`` for reuse if it may be."""
        instance.outstanding -= 1
        if conn is None:
            return
        if reusable and not conn.closed and len(instance.idle) < self.options.max_idle_per_instance:
            if not instance.removed and not instance.suspended:
                conn.sink = None
                conn.idle_since = now
                instance.idle.append(conn)
                if self._sweeper is None:
                    self._schedule_sweep()
                return
        conn.close()

    def keep(self, conn: UpstreamConnection, now: float) -> None:
        """Put an unused connection among the idle ones (or close it if it is not wanted)."""
        instance = conn.instance
        usable = not instance.removed and not instance.suspended and not conn.closed
        if usable and len(instance.idle) < self.options.max_idle_per_instance:
            conn.sink = None
            conn.idle_since = now
            instance.idle.append(conn)
            self._schedule_sweep()
        else:
            conn.close()

    def report(self, instance: Instance, ok: bool, now: float) -> None:
        """Passive health: consecutive failures eject the instance for a while."""
        if ok:
            instance.failures = 0
            return
        instance.failures += 1
        if instance.failures >= self.options.eject_after:
            instance.ejected_until = now + self.options.eject_seconds
            instance.failures = 0

    def forget(self, conn: UpstreamConnection) -> None:
        """An idle connection was closed by the backend."""
        idle = conn.instance.idle
        if conn in idle:
            idle.remove(conn)

    def close(self) -> None:
        """Close every idle connection (shutdown); busy ones close when their request ends."""
        for instance in self.instances.values():
            self._close_idle(instance)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    # -- idle connection expiry
    def _close_idle(self, instance: Instance) -> None:
        idle, instance.idle = instance.idle, []
        for conn in idle:
            conn.close()

    def _schedule_sweep(self) -> None:
        if self._sweeper is None:
            loop = asyncio.get_running_loop()
            self._sweeper = loop.call_later(min(1.0, self.options.idle_timeout / 2), self._sweep)

    def _sweep(self) -> None:
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        cutoff = now - self.options.idle_timeout
        remaining = False
        for instance in self.instances.values():
            keep = [c for c in instance.idle if not c.closed and c.idle_since > cutoff]
            for conn in instance.idle:
                if conn not in keep:
                    conn.close()
            instance.idle = keep
            remaining = remaining or bool(keep)
        if remaining:
            self._schedule_sweep()
