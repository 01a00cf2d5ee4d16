"""CSC-15 server (seed 7.5.2.15, Tables 10.X.2.5/6): ``mcx-access-profiles/v1``, where the service
registry server updates the access server's application profiles, MC user authorizations and service
pools; plus the puller that fetches a snapshot from the registry at start and whenever a change
arrives whose predecessor this server never saw.

Every change carries ``Asgate-Sequence`` and ``Asgate-Previous-Sequence`` (a batch: its
``previousSequence`` and each change's ``sequence``). A change already applied is acknowledged again
(a retried push); a gap is answered 409 ``SEQUENCE_GAP`` and repaired with a snapshot.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import httpx
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from asgate import logs
from asgate.access.state import AccessState, SequenceGap
from asgate.auth import Authenticator
from asgate.background import Background
from asgate.client._http import TokenSource
from asgate.problem import Cause, InvalidParam, ProblemError
from asgate.registry.models import AllowedService, ApplicationProfile
from asgate.registry.notify import backoff
from asgate.web import JSON, parse_body, respond
from asgate.wire import WireModel

_log = logs.get("asgate.access.csc15")
API = "/mcx-access-profiles/v1"
SCOPE = "mcx-access-profiles"
SEQUENCE = "asgate-sequence"
PREVIOUS = "asgate-previous-sequence"


class PoolInstance(WireModel):
    service_instance_id: str
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)
    api_prefix: str = ""
    protocol: str = "HTTP"


class ServicePool(WireModel):
    service_type: str
    service_name: str
    instances: list[PoolInstance]


class UserAuthorization(WireModel):
    NULLABLE = frozenset({"services"})  # null: every service the application may use

    app_id: str
    mc_service_id: str
    services: list[AllowedService] | None = None


class Change(WireModel):
    NULLABLE = frozenset({"payload"})  # a DELETE carries none

    sequence: int = Field(ge=1)
    kind: Literal["app-profile", "user-authorization", "service-pool"]
    key: str = Field(min_length=1, max_length=512)
    op: Literal["PUT", "DELETE"]
    payload: dict[str, Any] | None = None


class ChangeBatch(WireModel):
    previous_sequence: int = Field(ge=0)
    changes: list[Change] = Field(min_length=1, max_length=5000)


_PAYLOADS: dict[str, type[WireModel]] = {
    "app-profile": ApplicationProfile,
    "user-authorization": UserAuthorization,
    "service-pool": ServicePool,
}


class Csc15Server:
    def __init__(self, state: AccessState, authenticate: Authenticator, max_body: int, on_gap: Any) -> None:
        self.state = state
        self.authenticate = authenticate
        self.max_body = max_body
        self.on_gap = on_gap

    def routes(self) -> list[BaseRoute]:
        one = self.one
        return [
            Route(f"{API}/app-profiles/{{key}}", one, methods=["PUT", "DELETE"]),
            Route(f"{API}/user-authorizations/{{app}}/{{user}}", one, methods=["PUT", "DELETE"]),
            Route(f"{API}/service-pools/{{type}}/{{name}}", one, methods=["PUT", "DELETE"]),
            Route(f"{API}/changes", self.batch, methods=["POST"]),
            Route(f"{API}/state", self.show, methods=["GET"]),
        ]

    async def one(self, request: Request) -> Response:
        """Update application profile request (Table 10.X.2.5-1), and its siblings."""
        await self.authenticate(request, SCOPE)
        segment = request.url.path.removeprefix(f"{API}/").split("/", 1)[0]
        kind = {"app-profiles": "app-profile", "user-authorizations": "user-authorization"}.get(
            segment, "service-pool"
        )
        params = request.path_params
        key = params.get("key") or (
            f"{params['app']}/{params['user']}"
            if kind == "user-authorization"
            else f"{params['type']}/{params['name']}"
        )
        payload = None
        if request.method == "PUT":
            payload = (await parse_body(request, _PAYLOADS[kind], self.max_body)).dump()
        change = {
            "sequence": _header_int(request, SEQUENCE),
            "kind": kind,
            "key": key,
            "op": request.method,
            "payload": payload,
        }
        return self._apply([change], _header_int(request, PREVIOUS, allow_zero=True))

    async def batch(self, request: Request) -> Response:
        await self.authenticate(request, SCOPE)
        body = await parse_body(request, ChangeBatch, self.max_body)
        changes = []
        for position, change in enumerate(body.changes):
            if change.op == "PUT":
                try:
                    _PAYLOADS[change.kind].model_validate(change.payload or {})
                except ValueError as exc:
                    pointer = f"/changes/{position}/payload"
                    raise ProblemError(
                        400,
                        Cause.MANDATORY_IE_INCORRECT,
                        f"change {change.sequence}: {str(exc).splitlines()[0]}",
                        invalid_params=[InvalidParam(param=pointer, reason="not a valid payload")],
                    ) from None
            changes.append(change.model_dump())
        return self._apply(changes, body.previous_sequence)

    def _apply(self, changes: list[dict[str, Any]], previous: int) -> Response:
        try:
            self.state.apply(changes, previous)
        except SequenceGap as gap:
            self.on_gap()
            raise ProblemError(409, "SEQUENCE_GAP", f"{gap}; pulling a snapshot from the registry") from None
        # Table 10.X.2.6-1: the result.
        return respond(None, 204, {SEQUENCE: str(self.state.seq)})

    async def show(self, request: Request) -> Response:
        await self.authenticate(request, SCOPE)
        return Response(json.dumps(self.state.snapshot()), media_type=JSON)


def _header_int(request: Request, name: str, *, allow_zero: bool = False) -> int:
    raw = request.headers.get(name, "")
    if not raw.isdigit() or (int(raw) == 0 and not allow_zero):
        raise ProblemError(
            400, Cause.MANDATORY_IE_MISSING, f"{name} must be a sequence number",
            invalid_params=[InvalidParam(param=f"header {name}", reason=raw[:20] or "missing")],
        )  # fmt: skip
    return int(raw)


class SnapshotPuller:
    """Fetches the registry's snapshot; keeps trying (with backoff) while the registry is down, and
    meanwhile the access server serves from the state it has."""

    def __init__(
        self, state: AccessState, http: httpx.AsyncClient, registry_url: str, tokens: TokenSource
    ) -> None:
        self.state = state
        self.http = http
        self.url = f"{registry_url.rstrip('/')}/mcx-registry-sync/v1/snapshot"
        self.tokens = tokens
        self.wanted = asyncio.Event()
        self.pulled = asyncio.Event()

    def request(self) -> None:
        self.wanted.set()

    async def run(self, background: Background) -> None:
        """Pull whenever a snapshot is wanted, until the role stops."""
        attempt = 0
        while await background.pause(None, self.wanted):
            try:
                headers = {"Authorization": f"Bearer {await self.tokens.token(self.http)}"}
                response = await self.http.get(self.url, headers=headers, timeout=30.0)
                response.raise_for_status()
                self.state.load(response.json())
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                attempt += 1
                delay = backoff(attempt, 0.5, 30.0)
                _log.info(
                    "snapshot pull failed; serving from the state held",
                    error=str(exc)[:200],
                    retry_in=round(delay, 1),
                )
                await background.pause(delay)
                continue
            attempt = 0
            self.wanted.clear()
            self.pulled.set()
            _log.info(
                "snapshot loaded",
                sequence=self.state.seq,
                profiles=len(self.state.profiles),
                pools=len(self.state.pools),
            )
