"""State shared by every client connection of one listener: gate, limits, timers, draining."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from asgate.access.errors import Refusal
from asgate.access.http1 import Downstream
from asgate.access.metrics import SasMetrics
from asgate.access.options import EngineOptions
from asgate.access.types import Gate
from asgate.kernel.problem import Cause

if TYPE_CHECKING:
    from asgate.access.http2 import Http2

    Connection = Downstream | Http2

T = TypeVar("T")


class Engine:
    """Create inside the running loop; ``protocol`` is the factory for ``loop.create_server``."""

    def __init__(
        self, gate: Gate, options: EngineOptions | None = None, metrics: SasMetrics | None = None
    ) -> None:
        self.gate = gate
        self.admit_nowait = getattr(gate, "admit_nowait", None)
        self.options = options or EngineOptions()
        self.metrics = metrics or SasMetrics()
        self.loop = asyncio.get_running_loop()
        self.connections: set[Connection] = set()
        self.per_source: dict[str, int] = {}
        self.draining = False
        self.tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.TimerHandle | None = self.loop.call_later(self.options.tick, self._sweep)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """A task the engine holds on to (the loop keeps only weak references)."""
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def protocol(self) -> Downstream:
        return Downstream(self)

    def accept(self, conn: Connection) -> Refusal | None:
        """Self-protection before a byte is read: global and per-source connection caps."""
        options = self.options
        source = conn.client[0]
        if self.draining or len(self.connections) >= options.max_connections:
            self.metrics.refused("over_global_limit")
            return Refusal(503, Cause.NF_CONGESTION, "too many connections", [(b"retry-after", b"1")])
        count = self.per_source.get(source, 0)
        if count >= options.max_connections_per_source:
            self.metrics.refused("over_source_limit")
            return Refusal(
                503, Cause.NF_CONGESTION, "too many connections from this address", [(b"retry-after", b"1")]
            )
        self.per_source[source] = count + 1
        self.connections.add(conn)
        self.metrics.accepted()
        return None

    def release(self, conn: Connection) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.metrics.closed()
            source = conn.client[0]
            left = self.per_source.get(source, 1) - 1
            if left > 0:
                self.per_source[source] = left
            else:
                self.per_source.pop(source, None)

    def replace(self, old: Connection, new: Connection) -> None:
        """``new`` serves the client of ``old`` from now on (HTTP/1.1 handing over to HTTP/2)."""
        if old in self.connections:
            self.connections.discard(old)
            self.connections.add(new)

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self.connections):
            conn.check(now)
        self._sweeper = self.loop.call_later(self.options.tick, self._sweep)

    async def drain(self, grace: float) -> None:
        """Stop taking requests, let the ones under way finish (up to ``grace`` s), close the rest."""
        self.draining = True
        for conn in list(self.connections):
            conn.drain()
        deadline = self.loop.time() + grace
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for conn in list(self.connections):
            conn.abort()
        await asyncio.sleep(0)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
