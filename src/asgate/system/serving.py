"""Running the apps: uvicorn servers on one event loop, graceful shutdown on SIGTERM/SIGINT.

On a signal an attached companion (``asgate up --samples``: the sample MC services) stops first,
while the servers still answer its deregistrations; then every listener stops accepting, in-flight
requests finish (up to ``timeout_graceful_shutdown``), the roles stop and the store drains its
queued writes. A second signal forces the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import ssl
from collections.abc import Callable, Generator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from asgate.kernel import logs
from asgate.kernel.settings import HostPort, Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime

_log = logs.get("asgate.serve")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :func:`serve_all` (several servers, one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _TlsIdentityProtocol(HttpToolsProtocol):
    """Adds the ASGI TLS extension (verified client certificate) to every request's scope."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        cert = ssl_object.getpeercert() if ssl_object is not None else None
        if cert:
            subject = {k: v for rdn in cert.get("subject", ()) for k, v in rdn}
            self._tls = {"client_cert_cn": subject.get("commonName"), "client_cert_subject": subject}

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]


def server_config(app: ASGIApp, listen: HostPort, settings: Settings, **extra: Any) -> uvicorn.Config:
    tls: dict[str, Any] = {}
    http: Any = "httptools"
    if settings.tls_cert is not None:
        tls = {"ssl_certfile": str(settings.tls_cert), "ssl_keyfile": str(settings.tls_key)}
        if settings.tls_client_ca is not None:
            tls |= {"ssl_ca_certs": str(settings.tls_client_ca), "ssl_cert_reqs": ssl.CERT_REQUIRED}
            http = _TlsIdentityProtocol
    return uvicorn.Config(
        app,
        host=listen.host,
        port=listen.port,
        http=http,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,  # X-Forwarded-* are not trusted: set api_root when behind a proxy
        timeout_graceful_shutdown=10,
        timeout_keep_alive=15,
        **tls,
        **extra,
    )


Companion = Callable[[], AbstractAsyncContextManager[object]]


async def serve_all(
    configs: Sequence[uvicorn.Config],
    on_ready: Callable[[], None] | None = None,
    *,
    companion: Companion | None = None,
) -> None:
    """Serve until a signal; ``companion()`` is entered once every server listens and exited
    before any of them stops."""
    servers = [_Server(config) for config in configs]
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def stop(signame: str) -> None:
        _log.info("shutting down", signal=signame)
        if stopping.is_set():
            for server in servers:
                server.force_exit = True
        stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig.name)
    try:
        tasks = [asyncio.create_task(server.serve()) for server in servers]
        while not all(server.started for server in servers):
            if any(task.done() for task in tasks):
                break
            await asyncio.sleep(0.02)
        else:
            # What start-up loaded (the registry's view of every instance, keys, settings) lives as
            # long as the process: out of the collector's sight, so that a full collection under load
            # does not walk it (with 10 k instances that pause was the discovery p99).
            gc.collect()
            gc.freeze()
            if on_ready is not None:
                on_ready()
            try:
                await _until_stopping(stopping, tasks, companion)
            except Exception:  # the companion failed: stop serving, then say why
                for server in servers:
                    server.should_exit = True
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
        for server in servers:
            server.should_exit = True
        await asyncio.gather(*tasks)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


async def _until_stopping(
    stopping: asyncio.Event, tasks: Sequence[asyncio.Task[None]], companion: Companion | None
) -> None:
    """Until a signal, or until a server ended by itself; with ``companion()`` entered meanwhile."""
    waiter = asyncio.create_task(stopping.wait())
    try:
        async with companion() if companion is not None else contextlib.nullcontext():
            await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()


async def run(
    settings: Settings,
    role_names: Sequence[str] | None = None,
    *,
    companion: Callable[[Runtime], AbstractAsyncContextManager[object]] | None = None,
) -> None:
    """Open the runtime, start the roles and serve the control plane until a signal arrives;
    ``companion(runtime)`` runs while the control plane listens (see :func:`serve_all`)."""
    async with Runtime.open(settings) as rt, control_app(rt, role_names) as app:
        scheme = "https" if settings.tls else "http"

        def ready() -> None:
            _log.info(
                "asgate ready",
                control=f"{scheme}://{settings.listen}",
                roles=list(role_names or ["all"]),
                database=settings.db_url.split("://", 1)[0],
                issuer=settings.token_issuer,
            )

        await serve_all(
            [server_config(app, settings.listen, settings)],
            on_ready=ready,
            companion=(lambda: companion(rt)) if companion is not None else None,
        )
