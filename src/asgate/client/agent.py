"""``ServiceAgent``: keeps one MC service server instance registered with the service registry
server (seed 5.2.8: "the services in MC system shall register their service information").

Lifecycle, all driven by one background task::

    (health check fails) --> UNHEALTHY: no heartbeats; the registry suspends the instance
    REGISTERING --POST /services 201--> REGISTERED --PUT .../heartbeat every heartbeatPeriod-->
    REGISTERED --404 (the registry removed it)--> REGISTERING
    network error / 5xx / 401 / 403 / 409 --> retry with exponential backoff and jitter

On stop (``stop()``, leaving ``async with``, cancelling ``run()``, or SIGTERM with
``run(signals=...)``) the agent deregisters (``DELETE /services/{id}``) within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Self

import httpx
from pydantic import ValidationError

from asgate.client._http import TokenSource
from asgate.client.assertion import SasCaller, SasKeys, pool_audience, verify_sas_assertion
from asgate.client.health import HealthCheck
from asgate.client.registration import ServiceRegistrationClient
from asgate.domain.registry import ServiceInstance, ServiceRegistration
from asgate.kernel import logs
from asgate.kernel.backoff import backoff
from asgate.kernel.problem import ProblemError

_log = logs.get("asgate.agent")
# Errors worth retrying: the registry is unreachable or overloaded, or the token was refused
# (the administrator may provision the client later). A 400 means the registration itself is
# wrong and retrying cannot help.
_TRANSIENT = (httpx.HTTPError, OSError)
_FATAL_STATUSES = frozenset({400, 411, 413, 415})


class AgentState(StrEnum):
    STOPPED = "STOPPED"
    REGISTERING = "REGISTERING"
    REGISTERED = "REGISTERED"
    UNHEALTHY = "UNHEALTHY"


def _fatal(exc: Exception) -> bool:
    """The registry refused the registration document itself (a refused token is not fatal)."""
    return isinstance(exc, ProblemError) and exc.status in _FATAL_STATUSES and exc.cause != "INVALID_TOKEN"


class ServiceAgent:
    """Registers ``registration`` with the registry at ``registry_url``, heartbeats, re-registers
    when the registry lost the instance, and deregisters on stop.

    ``credentials`` is usually :class:`asgate.client.ClientCredentials` for a client holding scope
    ``mcx-service-registration``. ``health_check`` (an async callable returning ``bool``) is asked
    before every registration and heartbeat, and every ``health_interval`` seconds (default: the
    heartbeat period) while it fails. ``transport`` or ``http`` let tests run against an app
    in-process.

    :meth:`verify_sas_assertion` checks the service access server's assertion on each request:
    issued by ``sas_issuer`` (default ``{registry_url}/sas``, right when the deployment's
    ``issuer`` is its control-plane URL) for this instance's pool, signed with a key of
    ``jwks_uri`` (default ``{registry_url}/oauth2/jwks``).
    """

    def __init__(
        self,
        registry_url: str,
        registration: ServiceRegistration,
        credentials: TokenSource | None,
        *,
        health_check: HealthCheck | None = None,
        health_interval: float | None = None,
        health_timeout: float = 5.0,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        deregister_timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        http: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        sas_issuer: str | None = None,
        jwks_uri: str | None = None,
    ) -> None:
        self.client = ServiceRegistrationClient(
            registry_url, credentials, transport=transport, http=http, timeout=timeout
        )
        root = self.client.base_url
        self.sas_issuer = sas_issuer or f"{root}/sas"
        self.sas_keys = SasKeys(jwks_uri or f"{root}/oauth2/jwks", http=self.client.http)
        self._registration = registration
        self._health_check = health_check
        self._health_interval = health_interval
        self._health_timeout = health_timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._deregister_timeout = deregister_timeout
        self._instance: ServiceInstance | None = None
        self._state = AgentState.STOPPED
        self._lock = asyncio.Lock()
        self._registered = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._last_contact = 0.0
        self._update_pending = False
        self.last_error: str | None = None
        self.heartbeats = 0  # heartbeats the registry acknowledged

    # ------------------------------------------------------------ state

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def registration(self) -> ServiceRegistration:
        """The service information the agent registers (as last given to ``update``)."""
        return self._registration

    @property
    def instance(self) -> ServiceInstance | None:
        """The instance as the registry last returned it, or None while not registered."""
        return self._instance

    @property
    def instance_id(self) -> str | None:
        return self._instance.service_instance_id if self._instance else None

    def _set_state(self, state: AgentState) -> None:
        if state is not self._state:
            _log.info("agent state", state=str(state), service=self._registration.service_name)
            self._state = state

    async def verify_sas_assertion(self, request_or_headers: Any) -> SasCaller:
        """The caller of a request the service access server forwarded to this instance (seed
        10.X.5 step 3), from its ``Asgate-Assertion``; raises
        :class:`~asgate.client.SasAssertionError` (a 401 ``ProblemError``) when there is no valid
        one for this pool."""
        registration = self._registration
        return await verify_sas_assertion(
            request_or_headers,
            self.sas_keys,
            issuer=self.sas_issuer,
            audience=pool_audience(registration.service_type, registration.service_name),
        )

    # ------------------------------------------------------------ one call each

    async def register(self) -> ServiceInstance:
        """``POST /services`` unless already registered; returns the stored instance."""
        async with self._lock:
            if self._instance is not None:
                return self._instance
            sent = asyncio.get_running_loop().time()
            instance, _ = await self.client.register(self._registration)
            self._stored(instance, sent)
            _log.info("registered", instance=instance.service_instance_id, service=instance.service_name)
            return instance

    async def heartbeat(self) -> None:
        """One ``PUT /services/{id}/heartbeat``; a 404 forgets the instance (``ProblemError`` raised)."""
        async with self._lock:
            if self._instance is None:
                raise RuntimeError("not registered")
            sent = asyncio.get_running_loop().time()
            try:
                await self.client.heartbeat(self._instance.service_instance_id)
            except ProblemError as exc:
                if exc.status == 404:
                    self._forget()
                raise
            self._last_contact = sent
            self.heartbeats += 1

    async def update(
        self, registration: ServiceRegistration | None = None, **changes: Any
    ) -> ServiceInstance | None:
        """Replace the service information (``PUT /services/{id}``, which also counts as a
        heartbeat): a whole new ``registration``, or ``changes`` by Python field name, e.g.
        ``update(environment={"region": "south"})``. Not registered yet: the agent registers the
        new information. The registry lost the instance (404): registers it anew. Other errors
        are raised (the new information is still what a later re-registration sends)."""
        unknown = set(changes) - set(ServiceRegistration.model_fields)
        if unknown:
            raise TypeError(f"unknown ServiceRegistration field(s): {', '.join(sorted(unknown))}")
        base = registration or self._registration
        new = base
        if changes:
            new = ServiceRegistration.model_validate(
                {**base.model_dump(by_alias=False, exclude_none=True), **changes}
            )
        async with self._lock:
            self._registration = new
            if self._instance is None:
                return None
            if self._state is AgentState.UNHEALTHY:
                # A PUT counts as a heartbeat and would bring a suspended instance back while the
                # service is unhealthy: it is sent instead of the first heartbeat once healthy.
                self._update_pending = True
                return self._instance
            try:
                return await self._send_update()
            except ProblemError as exc:
                if exc.status != 404:
                    raise
        return await self.register()

    async def _send_update(self) -> ServiceInstance:
        """``PUT /services/{id}`` with the current registration; the caller holds the lock."""
        assert self._instance is not None
        sent = asyncio.get_running_loop().time()
        try:
            instance = await self.client.update(self._instance.service_instance_id, self._registration)
        except ProblemError as exc:
            if exc.status == 404:
                self._forget()
            raise
        self._stored(instance, sent)
        return instance

    async def _flush_update(self) -> None:
        async with self._lock:
            if self._instance is not None and self._update_pending:
                await self._send_update()

    async def deregister(self) -> None:
        """``DELETE /services/{id}`` if registered (an instance the registry already removed is fine)."""
        async with self._lock:
            if self._instance is None:
                return
            instance_id = self._instance.service_instance_id
            try:
                await self.client.deregister(instance_id)
            except ProblemError as exc:
                if exc.status != 404:
                    raise
            self._forget()
            _log.info("deregistered", instance=instance_id)

    def _stored(self, instance: ServiceInstance, sent: float) -> None:
        # The next heartbeat is due a period after this call was sent (the registry's clock
        # started when it received it, a little later).
        self._instance = instance
        self._last_contact = sent
        self._update_pending = False
        self._registered.set()
        self._set_state(AgentState.REGISTERED)

    def _forget(self) -> None:
        self._instance = None
        self._registered.clear()

    # ------------------------------------------------------------ the lifecycle task

    async def start(self) -> None:
        """Start registering and heartbeating in the background (returns at once)."""
        if self._task is None or self._task.done():
            self._set_state(AgentState.REGISTERING)
            self._task = asyncio.create_task(self._loop(), name=f"agent:{self._registration.service_name}")

    async def wait_registered(self, timeout: float | None = None) -> ServiceInstance:
        """Wait until the instance is registered (the agent may be started after this is called);
        raises the error that made the agent give up, if it did."""
        async with asyncio.timeout(timeout):
            while self._instance is None:
                task = self._task
                if task is not None and task.done():
                    if not task.cancelled():
                        task.result()
                    raise RuntimeError("the agent stopped")
                waiter = asyncio.ensure_future(self._registered.wait())
                pending: set[asyncio.Future[Any]] = {waiter} if task is None else {waiter, task}
                try:
                    await asyncio.wait(
                        pending, timeout=0.1 if task is None else None, return_when="FIRST_COMPLETED"
                    )
                finally:
                    waiter.cancel()
            return self._instance

    async def stop(self, *, deregister: bool = True) -> None:
        """Stop the background task and (by default) deregister, waiting at most
        ``deregister_timeout`` seconds; errors are logged, never raised. The HTTP client is
        closed (unless it was passed in): a stopped agent is not started again."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if deregister:
            try:
                async with asyncio.timeout(self._deregister_timeout):
                    await self.deregister()
            except (TimeoutError, ProblemError, *_TRANSIENT) as exc:
                _log.warning(
                    "deregistration failed", instance=self.instance_id, error=str(exc) or type(exc).__name__
                )
        self._set_state(AgentState.STOPPED)
        await self.client.aclose()

    async def run(self, *, signals: Sequence[signal.Signals] = ()) -> None:
        """Run until cancelled or until one of ``signals`` arrives, then deregister and return.
        Raises the error that made the agent give up (a registration the registry refuses as
        malformed)."""
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in signals:
            loop.add_signal_handler(sig, stopping.set)
        try:
            await self.start()
            assert self._task is not None
            waiter = asyncio.ensure_future(stopping.wait())
            try:
                await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if self._task.done():
                self._task.result()
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _loop(self) -> None:
        failures = 0
        while True:
            if not await self._healthy():
                await asyncio.sleep(self._health_interval or self._registration.heartbeat_period)
                continue
            was_registered = self._instance is not None
            try:
                if was_registered:
                    await (self._flush_update() if self._update_pending else self.heartbeat())
                else:
                    self._set_state(AgentState.REGISTERING)
                    await self.register()
            except (ProblemError, *_TRANSIENT) as exc:
                if was_registered and isinstance(exc, ProblemError) and exc.status == 404:
                    # The registry removed the instance (missed heartbeats, or an administrator).
                    _log.warning("instance unknown to the registry; registering again")
                    continue
                if _fatal(exc):
                    self.last_error = str(exc)
                    _log.error("registry refused the registration; giving up", error=str(exc))
                    raise
                failures += 1
                await self._back_off(failures, str(exc) or type(exc).__name__)
                continue
            except ValidationError as exc:
                # The registry's answer does not match the contract: retrying a POST would only
                # create more instances.
                self.last_error = f"registry answer does not match mcx-service-registration/v1: {exc}"
                _log.error("unexpected registry answer; giving up", error=str(exc))
                raise
            except Exception as exc:  # noqa: BLE001 - a long-running agent outlives its own bugs
                _log.exception("agent error; retrying")
                failures += 1
                await self._back_off(failures, f"{type(exc).__name__}: {exc}")
                continue
            failures = 0
            self.last_error = None
            await self._sleep_until_due()

    async def _healthy(self) -> bool:
        if self._health_check is None:
            return True
        try:
            async with asyncio.timeout(self._health_timeout):
                healthy = await self._health_check()
        except Exception as exc:  # noqa: BLE001 - a failing check means unhealthy, never a crash
            _log.warning("health check failed", error=str(exc) or type(exc).__name__)
            healthy = False
        if not healthy:
            if self._state is not AgentState.UNHEALTHY:
                _log.warning("service unhealthy; heartbeats stop until it recovers")
            self._set_state(AgentState.UNHEALTHY)
        elif self._state is AgentState.UNHEALTHY:
            self._set_state(AgentState.REGISTERED if self._instance else AgentState.REGISTERING)
        return bool(healthy)

    async def _back_off(self, attempt: int, error: str) -> None:
        self.last_error = error
        delay = backoff(attempt, self._retry_initial, self._retry_max)
        _log.warning("registry call failed; retrying", error=error, attempt=attempt, retry_in=round(delay, 2))
        await asyncio.sleep(delay)

    async def _sleep_until_due(self) -> None:
        period = self._instance.heartbeat_period if self._instance else self._registration.heartbeat_period
        due = self._last_contact + period
        await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
