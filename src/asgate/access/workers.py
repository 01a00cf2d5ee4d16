"""Several data-plane processes for one access server (``sas_workers`` > 1).

The process running the access role keeps the CSC-15 server and writes the state file; each worker
is a separate ``asgate sas-worker`` process (started, not forked, so it inherits no threads or event
loop) that binds the data-plane port with SO_REUSEPORT (the kernel spreads connections over the
workers), follows the state file, and validates tokens itself. The parent restarts a worker that dies.

Each worker keeps its metrics in Prometheus multiprocess files in ``<data_dir>/sas-metrics`` (emptied
when the parent starts; a dead worker's gauges are dropped), which the parent's ``/metrics`` sums
(:class:`asgate.access.metrics.WorkerMetrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge

from asgate.access.csc15 import ProfileFetcher
from asgate.access.gate import AuditBuffer, SasGate
from asgate.access.metrics import SasMetrics, WorkerMetrics, forget_worker, fresh_directory
from asgate.access.options import EngineOptions, PoolOptions
from asgate.access.server import AccessServer
from asgate.access.state import AccessState
from asgate.kernel import logs
from asgate.kernel.background import Background
from asgate.kernel.settings import Settings
from asgate.store.tx import Tx
from asgate.system.runtime import Runtime

_log = logs.get("asgate.access.workers")


def reuseport_socket(host: str, port: int, backlog: int = 1024) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def state_path(settings: Settings) -> Path:
    return settings.data_dir / "sas-state.json"


async def run_worker(settings: Settings) -> None:
    """One data-plane worker: serve until SIGTERM, following the state file."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Runtime.open(settings) as rt:
        state = AccessState(pool_options=PoolOptions.from_settings(settings), path=None)
        audit = AuditBuffer()
        metrics = SasMetrics(rt.metrics.registry)
        gate = SasGate.configured(
            settings, state, rt.validator, keyring=rt.keyring, metrics=metrics, audit=audit.add
        )
        redis = gate.redis
        follower = StateFollower(state, state_path(settings))
        gate.misses = follower  # issue 14 in a worker: catch up with the parent before refusing
        background = Background()
        background.spawn(_follow(follower, rt, audit, background), "sas-follower")
        server = AccessServer(gate, EngineOptions.from_settings(settings), metrics)
        await server.start(sock=reuseport_socket(settings.sas_listen.host, settings.sas_listen.port))
        _log.info("sas worker serving", pid=os.getpid(), address=str(settings.sas_listen))
        await stop.wait()
        await server.stop()
        await background.stop()
        state.close()
        if redis is not None:
            await redis.aclose()


class StateFollower:
    """A worker's copy of the parent's state, read from the state file the parent writes.

    The parent acknowledges a CSC-15 push (and so lets the registry answer the application) as soon
    as it holds the change; a worker reads it from the file a few tens of milliseconds later. So
    that the application's first request is not refused in between (issue 14), a worker about to
    refuse for want of CSC-15 state first catches up: it reloads the file if it changed, else waits
    up to ``catch_up`` seconds for the parent's next save. One catch-up at a time; an application
    refused after one is not waited for again within ``quiet`` seconds (a refusal flood costs no
    waiting)."""

    def __init__(self, state: AccessState, path: Path, *, catch_up: float = 0.25, quiet: float = 2.0) -> None:
        self.state = state
        self.path = path
        self.catch_up = catch_up
        self.quiet = quiet
        self._seen = -1
        self._lock = asyncio.Lock()
        self._quiet: dict[str, float] = {}

    def _stamp(self) -> int:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return -1

    def reload(self) -> bool:
        """Load the file if it changed since the last load; whether it did."""
        stamp = self._stamp()
        if stamp == self._seen:
            return False
        self._seen = stamp
        loaded = AccessState(path=self.path)
        if loaded.restore():
            _replace(self.state, loaded)
        return True

    def wanted(self, app_id: str, cause: str) -> bool:
        if cause not in ProfileFetcher.CAUSES or not app_id:
            return False
        return self._quiet.get(app_id, 0.0) <= time.monotonic()

    async def fetch(self, app_id: str) -> None:
        async with self._lock:
            deadline = time.monotonic() + self.catch_up
            while not (caught_up := self.reload()) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        if not caught_up:  # nothing new came: the refusal stands, and is not waited for again soon
            if len(self._quiet) > 10_000:
                self._quiet.clear()
            self._quiet[app_id] = time.monotonic() + self.quiet


async def _follow(follower: StateFollower, rt: Runtime, audit: AuditBuffer, background: Background) -> None:
    """Reload the state when the file changes; write the audit rows of refusals."""
    while True:
        follower.reload()
        rows = audit.take()
        if rows:
            with contextlib.suppress(Exception):
                await rt.store.write(partial(_audit_rows, rows=rows))
        if not await background.pause(0.05):
            return


def _replace(state: AccessState, loaded: AccessState) -> None:
    """Take the loaded profiles and grants; update pools in place so open connections survive."""
    state.load(loaded.snapshot())
    loaded.close()


def _audit_rows(tx: Tx, *, rows: list[dict[str, object]]) -> None:
    from datetime import UTC, datetime

    tx.audit.append_rows([{"at": datetime.now(UTC), "details": None, **row} for row in rows])


class WorkerProcesses:
    """The parent's side: start ``count`` workers, restart any that dies, stop them on shutdown."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        config: Path | None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.count = count
        self.config = config
        self.metrics_dir = settings.data_dir.resolve() / "sas-metrics"
        self.registry = registry
        r = registry if registry is not None else CollectorRegistry()
        self._live = Gauge("asgate_sas_workers", "Data-plane worker processes running", registry=r)
        self._restarts = Counter(
            "asgate_sas_worker_restarts", "Data-plane workers restarted after they died", registry=r
        )
        self.env = {
            **os.environ,
            "ASGATE_DATA_DIR": str(settings.data_dir.resolve()),
            "ASGATE_DATABASE_URL": settings.db_url,
            "ASGATE_SAS_LISTEN": str(settings.sas_listen),
            "ASGATE_ISSUER": settings.token_issuer,
            # `asgate up --samples` allows loopback instances on its command line, not in the env.
            "ASGATE_INSTANCE_ALLOW_LOOPBACK": str(settings.instance_allow_loopback).lower(),
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
        }
        if settings.database_schema:
            self.env["ASGATE_DATABASE_SCHEMA"] = settings.database_schema
        self.procs: list[asyncio.subprocess.Process] = []
        self._background = Background()

    async def _spawn(self) -> asyncio.subprocess.Process:
        args = [sys.executable, "-m", "asgate"]
        if self.config is not None:
            args += ["--config", str(self.config)]
        return await asyncio.create_subprocess_exec(*args, "sas-worker", env=self.env)

    async def start(self) -> None:
        fresh_directory(self.metrics_dir)
        if self.registry is not None:
            self.registry.register(WorkerMetrics(self.metrics_dir))
        self.procs = [await self._spawn() for _ in range(self.count)]
        self._live.set(len(self.procs))
        self._background.spawn(self._supervise(), "sas-workers")
        _log.info("sas workers started", workers=self.count, pids=[p.pid for p in self.procs])

    async def _supervise(self) -> None:
        while True:
            for index, proc in enumerate(self.procs):
                if proc.returncode is not None and self._background.running:
                    _log.warning("sas worker died; restarting", pid=proc.pid, status=proc.returncode)
                    forget_worker(proc.pid, self.metrics_dir)
                    self._restarts.inc()
                    self.procs[index] = await self._spawn()
            if not await self._background.pause(0.5):
                return

    async def stop(self) -> None:
        # The supervisor first, so that it neither restarts a worker being stopped nor is cancelled
        # while starting one (which would leave a process that nobody stops).
        await self._background.stop()
        for proc in self.procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
            forget_worker(proc.pid, self.metrics_dir)
        self._live.set(0)
