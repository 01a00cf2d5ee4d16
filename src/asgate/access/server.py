"""Listeners: the engine on an event loop, and N worker processes sharing one port.

In-process (beside the control plane, one loop)::

    server = AccessServer(gate, EngineOptions.from_settings(settings), SasMetrics(registry))
    await server.start(settings.sas_listen.host, settings.sas_listen.port)
    ...
    await server.stop()  # stop accepting, finish in-flight requests, close idle keep-alives

Several processes (``sas_workers``)::

    Workers(make_gate, options, host, port, workers=4).run()  # blocks until SIGTERM/SIGINT

The listening socket is bound once in the parent and inherited by every worker after ``fork``:
binding errors surface before any worker starts, port 0 works, and a restarted worker takes up
the same socket. Each worker builds its own gate (``make_gate`` runs in the worker, after the fork:
pools, caches and Redis clients belong to one event loop).
"""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing
import os
import signal
import socket
import ssl as ssl_module
import time
from collections.abc import Awaitable, Callable
from multiprocessing.process import BaseProcess

from asgate import logs
from asgate.access.engine import Engine
from asgate.access.metrics import SasMetrics
from asgate.access.options import EngineOptions
from asgate.access.types import Gate

_log = logs.get("asgate.access.server")
GateFactory = Callable[[], Gate | Awaitable[Gate]]


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


def bind(host: str, port: int, backlog: int = 1024) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


async def serve_worker(
    sock: socket.socket,
    make_gate: GateFactory,
    options: EngineOptions,
    ssl: ssl_module.SSLContext | None = None,
) -> None:
    """One worker: build the gate, serve until SIGTERM/SIGINT, drain gracefully."""
    made = make_gate()
    gate = await made if inspect.isawaitable(made) else made
    server = AccessServer(gate, options)
    await server.start(sock=sock, ssl=ssl)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()
    aclose = getattr(gate, "aclose", None)
    if aclose is not None:
        await aclose()


def _worker_main(
    sock: socket.socket, make_gate: GateFactory, options: EngineOptions, ssl: ssl_module.SSLContext | None
) -> None:
    import uvloop

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards SIGTERM; ^C goes to it
    uvloop.run(serve_worker(sock, make_gate, options, ssl))


class Workers:
    """A parent process supervising ``workers`` forked engines on one pre-bound socket."""

    def __init__(
        self,
        make_gate: GateFactory,
        options: EngineOptions,
        host: str,
        port: int,
        workers: int,
        ssl: ssl_module.SSLContext | None = None,
    ) -> None:
        self.make_gate = make_gate
        self.ssl = ssl
        self.options = options
        self.sock = bind(host, port)
        self.port = int(self.sock.getsockname()[1])
        self.count = workers
        self.procs: list[BaseProcess] = []
        self._stopping = False

    def _spawn(self) -> BaseProcess:
        ctx = multiprocessing.get_context("fork")
        proc = ctx.Process(
            target=_worker_main, args=(self.sock, self.make_gate, self.options, self.ssl), daemon=True
        )
        proc.start()
        return proc

    def run(self) -> None:
        """Start the workers and supervise them until SIGTERM/SIGINT; then stop them gracefully."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self.procs = [self._spawn() for _ in range(self.count)]
        _log.info("sas workers started", port=self.port, workers=self.count, pids=[p.pid for p in self.procs])
        while not self._stopping:
            for index, proc in enumerate(self.procs):
                if not proc.is_alive() and not self._stopping:
                    _log.warning("sas worker died; restarting", pid=proc.pid, exitcode=proc.exitcode)
                    self.procs[index] = self._spawn()
            time.sleep(0.2)
        self.stop()

    def _on_signal(self, signum: int, frame: object) -> None:
        self._stopping = True

    def stop(self) -> None:
        self._stopping = True
        for proc in self.procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.options.shutdown_grace + 5
        for proc in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        self.sock.close()
