"""What every sample MC service shares: the caller the SAS asserts, ProblemDetails errors,
``/healthz``, the instance-name header, and how a sample describes itself to the registry.

Requests reach the samples only through the service access server (seed 10.X.5 step 3), which
has already checked the application profile and the MC user's authorization; it asserts who is
calling in a signed ``Asgate-Assertion`` that every handler verifies first (401 without a valid
one), and passes the applied ``Resource-Priority`` (RFC 4412). The plain ``Asgate-MC-Service-Id``
and ``Asgate-Application`` headers are not trusted here: they mean something only behind the SAS.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from asgate.client.assertion import SasCaller, pool_audience
from asgate.domain.registry import InterfaceDescription, Resource, ServiceRegistration, Version
from asgate.kernel import logs
from asgate.kernel.problem import Cause, ProblemError, render
from asgate.kernel.web import problem_for, read_body, require_json

# seed 10.X.5 step 3: the SAS forwards the verified MC user and the application (a convenience:
# the samples trust the signed assertion only).
MC_SERVICE_ID = "asgate-mc-service-id"
APPLICATION = "asgate-application"
RESOURCE_PRIORITY = "resource-priority"
# Lets tests and the demo see which instance of a pool answered (a name, never an address).
INSTANCE_HEADER = "x-sample-instance"
# The Resource-Priority the sample received, so a caller can see what the SAS passed on.
RECEIVED_PRIORITY_HEADER = "x-sample-resource-priority"
MAX_BODY = 64 * 1024

_log = logs.get("asgate.samples")
S = TypeVar("S")
# Checks a request's SAS assertion for this sample's pool (ServiceAgent.verify_sas_assertion).
Verify = Callable[[HTTPConnection], Awaitable[SasCaller]]


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the SAS asserted it."""

    mc_service_id: str
    application: str | None
    priority: str | None


_CALLER = "asgate.sas_caller"  # the ASGI scope key AssertionGate stores the verified caller under


async def caller(conn: HTTPConnection) -> Caller:
    """The caller of a request forwarded by the SAS, from its verified assertion; a 401
    ``SasAssertionError`` (``INVALID_SAS_ASSERTION``) without a valid one."""
    asserted: SasCaller | None = conn.scope.get(_CALLER)
    if asserted is None:
        verify: Verify = conn.app.state.verify_sas_assertion
        asserted = await verify(conn)
    return Caller(asserted.mc_service_id, asserted.client_id, asserted.priority)


class AssertionGate:
    """Every request but ``/healthz`` needs a valid SAS assertion before it is routed (an unknown
    path included): 401 problem+json otherwise, a refused upgrade for a WebSocket."""

    def __init__(self, app: ASGIApp, verify: Verify) -> None:
        self.app = app
        self.verify = verify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] == "/healthz":
            await self.app(scope, receive, send)
            return
        try:
            scope[_CALLER] = await self.verify(HTTPConnection(scope))
        except ProblemError as exc:
            response = render(exc, instance=scope["path"])
            if scope["type"] == "websocket":
                await WebSocket(scope, receive, send).send_denial_response(response)
            else:
                await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def not_found(what: str) -> ProblemError:
    return ProblemError(404, Cause.CONTEXT_NOT_FOUND, f"no {what}")


def forbidden(detail: str) -> ProblemError:
    return ProblemError(403, "NOT_ALLOWED", detail)


async def json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or a 400/411/413/415 ProblemError."""
    require_json(request)
    raw = await read_body(request, MAX_BODY)
    try:
        data = json.loads(raw)
    except ValueError:
        raise ProblemError(400, Cause.INVALID_MSG_FORMAT, "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ProblemError(400, Cause.INVALID_MSG_FORMAT, "the body must be a JSON object")
    return data


@dataclass
class Health:
    """The sample's own health: ``/healthz`` and the agent's health check both read it."""

    healthy: bool = True


@dataclass
class Sample:
    """One built sample instance: its ASGI app and the switches the runner uses."""

    instance: str
    app: ASGIApp
    health: Health
    on_close: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """End long-lived responses (event streams) so the server can stop promptly."""
        for hook in self.on_close:
            hook()


class InstanceHeader:
    """Adds ``X-Sample-Instance`` (and the received ``Resource-Priority``) to every HTTP response
    and WebSocket handshake answer."""

    def __init__(self, app: ASGIApp, instance: str) -> None:
        self.app = app
        self.instance = instance.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        extra = [(INSTANCE_HEADER.encode(), self.instance)]
        for name, value in scope["headers"]:
            if name == RESOURCE_PRIORITY.encode():
                extra.append((RECEIVED_PRIORITY_HEADER.encode(), value))
                break

        async def send_with(message: Message) -> None:
            if message["type"] in (
                "http.response.start",
                "websocket.accept",
                "websocket.http.response.start",
            ):
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with)


async def _problem(request: Request, exc: Exception) -> Response:
    problem = problem_for(exc, request.method)
    if problem is None:  # unreachable for the registered exception types
        problem = ProblemError(500, Cause.SYSTEM_FAILURE, "internal error")
    return render(problem, instance=request.url.path)


async def _unexpected(request: Request, exc: Exception) -> Response:
    _log.exception("sample error", path=request.url.path)
    return render(ProblemError(500, Cause.SYSTEM_FAILURE, "internal error"), instance=request.url.path)


def build_sample(
    instance: str, routes: Sequence[BaseRoute], verify: Verify, health: Health | None = None
) -> Sample:
    """A Starlette app with ``GET /healthz``, ProblemDetails errors and the instance header;
    :func:`caller` checks each request with ``verify``."""
    health = health or Health()

    async def healthz(request: Request) -> Response:
        status = "UP" if health.healthy else "DOWN"
        return JSONResponse({"status": status, "instance": instance}, 200 if health.healthy else 503)

    app = Starlette(
        routes=[Route("/healthz", healthz), *routes],
        exception_handlers={ProblemError: _problem, HTTPException: _problem, Exception: _unexpected},
    )
    app.state.verify_sas_assertion = verify
    return Sample(instance, InstanceHeader(AssertionGate(app, verify), instance), health)


@dataclass(frozen=True)
class SampleSpec(Generic[S]):
    """How a sample describes itself to the registry, and how to build an instance of it.

    Instances built with the same ``state`` share their data, as the instances of one pool
    would share a database."""

    name: str
    service_type: str
    reference_point: str
    protocol: str
    api_prefix: str
    resources: tuple[Resource, ...]
    new_state: Callable[[], S]
    create: Callable[[str, S, Verify], Sample]

    @property
    def service_name(self) -> str:
        """Every instance registers the same name, so they form one pool (failover)."""
        return f"sample-{self.name}"

    @property
    def audience(self) -> str:
        """The ``aud`` of the SAS's assertions for this sample's pool."""
        return pool_audience(self.service_type, self.service_name)

    def registration(
        self, instance: str, port: int, *, host: str = "127.0.0.1", heartbeat_period: int = 10
    ) -> ServiceRegistration:
        """The ``ServiceRegistration`` of one instance listening on ``host:port``."""
        address = {"ipv6_addr": host} if ":" in host else {"ipv4_addr": host}
        return ServiceRegistration(
            service_type=self.service_type,
            service_name=self.service_name,
            interfaces=[
                InterfaceDescription(
                    reference_point=self.reference_point,
                    protocol=self.protocol,
                    port=port,
                    api_prefix=self.api_prefix,
                    **address,
                )
            ],
            versions=[Version(api_version="v1", resources=list(self.resources))],
            environment={"tier": "sample", "instance": instance},
            heartbeat_period=heartbeat_period,
        )
