"""Run sample MC services inside the current event loop, each instance on its own 127.0.0.1 port
with a :class:`ServiceAgent` that registers it with the service registry server.

Naming a service twice runs two instances of it (``gm-1``, ``gm-2``): they register the same
serviceType and serviceName, so the registry pools them and the SAS fails over between them, and
they share their in-memory data, as the instances of one pool would share a database.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.requests import HTTPConnection

from asgate.client._http import TokenSource
from asgate.client.agent import ServiceAgent
from asgate.client.assertion import SasCaller, SasKeys, pool_audience, verify_sas_assertion
from asgate.kernel import logs
from asgate.samples import cm, gm, mcdata, mcptt
from asgate.samples.common import Sample, SampleSpec, Verify

SPECS: dict[str, SampleSpec[Any]] = {spec.name: spec for spec in (gm.SPEC, cm.SPEC, mcdata.SPEC, mcptt.SPEC)}
# The demo's default: GM twice (failover), one of each of the others.
DEFAULT_SAMPLES = ("gm", "gm", "cm", "mcdata", "mcptt")

_log = logs.get("asgate.samples")


class _Server(uvicorn.Server):
    """A uvicorn server that leaves the process's signals alone (it shares the loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@dataclass
class RunningSample:
    """One running instance: ``url`` is its own address (only the registry and the SAS need it)."""

    service: str  # the sample's name: gm, cm, mcdata, mcptt
    instance: str  # gm-1, gm-2, ...: what X-Sample-Instance says
    port: int
    url: str
    sample: Sample
    state: Any  # the pool's data, shared with the other instances of the same sample
    agent: ServiceAgent | None
    _server: _Server
    _task: asyncio.Task[None]

    @property
    def healthy(self) -> bool:
        return self.sample.health.healthy

    @healthy.setter
    def healthy(self, value: bool) -> None:
        """Unhealthy: ``/healthz`` answers 503 and the agent stops heartbeating."""
        self.sample.health.healthy = value

    async def _stop(self, *, graceful: bool) -> None:
        if self.agent is not None:
            await self.agent.stop(deregister=graceful)
        self.sample.close()
        self._server.should_exit = True
        if not graceful:  # a crash: every connection cut at once
            self._server.force_exit = True
            for connection in list(self._server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class SamplesHandle:
    """The running samples; ``stop()`` deregisters every instance and stops its server."""

    def __init__(self) -> None:
        self.instances: list[RunningSample] = []

    def __getitem__(self, instance: str) -> RunningSample:
        for running in self.instances:
            if running.instance == instance:
                return running
        raise KeyError(instance)

    async def kill(self, instance: str) -> None:
        """Stop one instance as a crash would: no deregistration, connections cut. The registry
        suspends it after missed heartbeats; the SAS fails over to the rest of the pool."""
        await self[instance]._stop(graceful=False)

    async def stop(self) -> None:
        """Deregister every instance (so nothing is routed to it any more), then stop the servers."""
        running, self.instances = self.instances, []
        await asyncio.gather(*(r._stop(graceful=True) for r in running if not r._task.done()))

    async def __aenter__(self) -> SamplesHandle:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def _serve(sample: Sample, sock: socket.socket) -> tuple[_Server, asyncio.Task[None]]:
    config = uvicorn.Config(
        sample.app,
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=2,
        ws_ping_interval=None,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name=f"sample:{sample.instance}")
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"sample {sample.instance} did not start")
        await asyncio.sleep(0.01)
    return server, task


async def run_samples(
    registry_url: str | None,
    credentials: TokenSource | Mapping[str, TokenSource] | None,
    names: Sequence[str] = DEFAULT_SAMPLES,
    *,
    base_port: int = 9101,
    host: str = "127.0.0.1",
    heartbeat_period: int = 10,
    transport: httpx.AsyncBaseTransport | None = None,
    agent_options: Mapping[str, Any] | None = None,
    sas_keys: SasKeys | None = None,
    sas_issuer: str | None = None,
    service_names: Mapping[str, str] | None = None,
) -> SamplesHandle:
    """Start the samples ``names`` (``gm``, ``cm``, ``mcdata``, ``mcptt``; a name given twice runs
    two instances) on ``host`` ports ``base_port``, ``base_port + 1``, ... in order (``base_port=0``:
    any free ports), each registered by a :class:`ServiceAgent` with the registry at
    ``registry_url`` (``None``: serve without registering) using ``credentials`` (one token
    source for all, or one per sample name). Registration happens in the background, retried
    until the registry answers; ``await handle["gm-1"].agent.wait_registered()`` waits for it.
    ``agent_options`` are passed to every :class:`ServiceAgent`.

    Every request must carry a valid assertion of the service access server: checked by the
    instance's agent (``ServiceAgent.verify_sas_assertion``), or with ``sas_keys`` and
    ``sas_issuer`` when given (the pool, the assertions' audience, is ``SERVICE_TYPE/sample-NAME``,
    or the serviceName ``service_names`` gives for a sample registered by someone else); without a
    registry and without them, every request is refused."""
    unknown = sorted({n for n in names if n not in SPECS})
    if unknown:
        raise ValueError(f"unknown sample(s): {', '.join(unknown)}; known: {', '.join(SPECS)}")
    states: dict[str, Any] = {}
    counts: dict[str, int] = {}
    handle = SamplesHandle()
    try:
        for index, name in enumerate(names):
            spec = SPECS[name]
            counts[name] = counts.get(name, 0) + 1
            instance = f"{name}-{counts[name]}"
            state = states.setdefault(name, spec.new_state())
            sock = _listen(host, base_port + index if base_port else 0)
            port = int(sock.getsockname()[1])
            agent, health = None, _LateHealth()
            if registry_url is not None:
                tokens = credentials.get(name) if isinstance(credentials, Mapping) else credentials
                agent = ServiceAgent(
                    registry_url,
                    spec.registration(instance, port, host=host, heartbeat_period=heartbeat_period),
                    tokens,
                    health_check=health.check,
                    transport=transport,
                    **(agent_options or {}),
                )
            audience = pool_audience(spec.service_type, (service_names or {}).get(name, spec.service_name))
            verify = _verifier(audience, agent, sas_keys, sas_issuer)
            health.sample = sample = spec.create(instance, state, verify)
            server, task = await _serve(sample, sock)
            if agent is not None:
                await agent.start()
            url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
            handle.instances.append(
                RunningSample(name, instance, port, url, sample, state, agent, server, task)
            )
            _log.info("sample started", instance=instance, service=spec.service_type, url=url)
    except BaseException:
        await handle.stop()
        raise
    return handle


def _verifier(audience: str, agent: ServiceAgent | None, keys: SasKeys | None, issuer: str | None) -> Verify:
    if keys is None and agent is not None:
        return agent.verify_sas_assertion
    trusted = keys or SasKeys(jwks={"keys": []})  # nothing configured: no assertion is valid
    sas_issuer = issuer or ""

    async def verify(conn: HTTPConnection) -> SasCaller:
        return await verify_sas_assertion(conn, trusted, issuer=sas_issuer, audience=audience)

    return verify


class _LateHealth:
    """The agent's health check, for a sample built after its agent (the sample verifies
    assertions with the agent)."""

    sample: Sample | None = None

    async def check(self) -> bool:
        return self.sample is not None and self.sample.health.healthy
