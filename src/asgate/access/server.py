"""The listener: the engine on an event loop.

In-process (beside the control plane, one loop)::

    server = AccessServer(gate, EngineOptions.from_settings(settings), SasMetrics(registry))
    await server.start(settings.sas_listen.host, settings.sas_listen.port)
    ...
    await server.stop()  # stop accepting, finish in-flight requests, close idle keep-alives

Several data-plane processes (``sas_workers`` > 1) are ``asgate sas-worker`` processes, each
with its own ``AccessServer``, supervised by :class:`asgate.access.workers.WorkerProcesses`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl as ssl_module

from asgate.access.engine import Engine
from asgate.access.metrics import SasMetrics
from asgate.access.options import EngineOptions
from asgate.access.types import Gate
from asgate.kernel import logs

_log = logs.get("asgate.access.server")


class AccessServer:
    def __init__(
        self, gate: Gate, options: EngineOptions | None = None, metrics: SasMetrics | None = None
    ) -> None:
        self.gate = gate
        self.options = options or EngineOptions()
        self.metrics = metrics
        self.engine: Engine | None = None
        self._server: asyncio.Server | None = None

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        ssl: ssl_module.SSLContext | None = None,
        backlog: int = 1024,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.engine = engine = Engine(self.gate, self.options, self.metrics)
        if sock is not None:
            self._server = await loop.create_server(engine.protocol, sock=sock, ssl=ssl, backlog=backlog)
        else:
            self._server = await loop.create_server(engine.protocol, host, port, ssl=ssl, backlog=backlog)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let requests under way finish (up to ``grace`` s), then close."""
        if self._server is None or self.engine is None:
            return
        self._server.close()
        await self.engine.drain(self.options.shutdown_grace if grace is None else grace)
        await self._server.wait_closed()
        self.engine.close()
        self._server = None

    async def __aenter__(self) -> AccessServer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
