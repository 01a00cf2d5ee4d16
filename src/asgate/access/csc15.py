"""CSC-15 server (seed 7.5.2.15, Tables 10.X.2.5/6): ``mcx-access-profiles/v1``, where the service
registry server updates the access server's application profiles, MC user authorizations and service
pools; plus the puller that fetches a snapshot from the registry at start and whenever the registry
says the access server holds a sequence it never issued.

Every change carries ``Asgate-Sequence`` and ``Asgate-Previous-Sequence`` (a batch: its
``previousSequence`` and each change's ``sequence``). A push is applied only if it continues this
server's sequence exactly (``previous`` is what it holds, then strictly increasing numbers, at most
``MAX_BATCH`` changes and ``sas_csc15_max_body_bytes``); anything else is answered 409
``SEQUENCE_MISMATCH`` with the sequence held (header and ``currentSequence``) and nothing is applied,
a retried push included: the registry resumes from the sequence it is told, or, for a sequence it
never issued, asks for a resync (``POST /resync``) and the access server adopts the registry's
snapshot, whatever sequence it held. Only the registry's own clients (``sas_csc15_clients``, tokens
of this deployment's issuer) may change the state.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import httpx
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from asgate.access.state import (
    MAX_BATCH,
    MAX_SEQUENCE,
    AccessState,
    MalformedChanges,
    SequenceMismatch,
)
from asgate.auth import Authenticator
from asgate.auth.tokens import Principal
from asgate.client._http import TokenSource
from asgate.domain.registry import AllowedService, ApplicationProfile
from asgate.kernel import logs
from asgate.kernel.background import Background
from asgate.kernel.backoff import backoff
from asgate.kernel.problem import Cause, InvalidParam, ProblemError
from asgate.kernel.web import JSON, parse_body, respond
from asgate.kernel.wire import WireModel

_log = logs.get("asgate.access.csc15")
API = "/mcx-access-profiles/v1"
SCOPE = "mcx-access-profiles"
SEQUENCE = "asgate-sequence"
PREVIOUS = "asgate-previous-sequence"
MISMATCH = "SEQUENCE_MISMATCH"
NOT_ALLOWED = "CSC15_CLIENT_NOT_ALLOWED"

# Sequence numbers are JSON integers, never floats, booleans or strings, within the change log's BIGINT.
SequenceNumber = Annotated[int, Field(strict=True, ge=1, le=MAX_SEQUENCE)]
PreviousNumber = Annotated[int, Field(strict=True, ge=0, le=MAX_SEQUENCE)]


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

    sequence: SequenceNumber
    kind: Literal["app-profile", "user-authorization", "service-pool"]
    key: str = Field(min_length=1, max_length=512)
    op: Literal["PUT", "DELETE"]
    payload: dict[str, Any] | None = None


class ChangeBatch(WireModel):
    previous_sequence: PreviousNumber
    changes: list[Change] = Field(min_length=1, max_length=MAX_BATCH)


_PAYLOADS: dict[str, type[WireModel]] = {
    "app-profile": ApplicationProfile,
    "user-authorization": UserAuthorization,
    "service-pool": ServicePool,
}


class Csc15Server:
    def __init__(
        self,
        state: AccessState,
        authenticate: Authenticator,
        max_body: int,
        on_resync: Callable[[], None],
        *,
        clients: frozenset[str] = frozenset({"asgate-registry"}),
        issuer: str | None = None,
        audit: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.state = state
        self.authenticate = authenticate
        self.max_body = max_body
        self.on_resync = on_resync
        self.clients = clients
        self.issuer = issuer
        self.audit = audit

    def routes(self) -> list[BaseRoute]:
        one = self.one
        return [
            Route(f"{API}/app-profiles/{{key}}", one, methods=["PUT", "DELETE"]),
            Route(f"{API}/user-authorizations/{{app}}/{{user}}", one, methods=["PUT", "DELETE"]),
            Route(f"{API}/service-pools/{{type}}/{{name}}", one, methods=["PUT", "DELETE"]),
            Route(f"{API}/changes", self.batch, methods=["POST"]),
            Route(f"{API}/state", self.show, methods=["GET"]),
            Route(f"{API}/sequence", self.sequence, methods=["GET"]),
            Route(f"{API}/resync", self.resync, methods=["POST"]),
        ]

    async def _pusher(self, request: Request) -> Principal:
        """Only the registry changes what the access server holds: the scope is not enough, since
        every internal client of this deployment (the access server's own puller included) has it."""
        principal = await self.authenticate(request, SCOPE)
        local = self.issuer is None or principal.issuer == self.issuer
        if principal.client_id not in self.clients or not local:
            if self.audit is not None:
                self.audit(
                    {"actor": principal.client_id, "action": "csc15.deny", "resource": request.url.path[:400],
                     "outcome": "denied", "reason": f"{NOT_ALLOWED}: not a registry client",
                     "details": {"method": request.method, "issuer": principal.issuer[:200]}}
                )  # fmt: skip
            _log.warning("CSC-15 change from a client that is not the registry", client=principal.client_id)
            raise ProblemError(
                403, NOT_ALLOWED, "only the service registry server may change the access server's state"
            )
        return principal

    async def one(self, request: Request) -> Response:
        """Update application profile request (Table 10.X.2.5-1), and its siblings."""
        await self._pusher(request)
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
        sequence, previous = _header_int(request, SEQUENCE), _header_int(request, PREVIOUS, allow_zero=True)
        payload = None
        if request.method == "PUT":
            payload = (await parse_body(request, _PAYLOADS[kind], self.max_body)).dump()
        change = {"sequence": sequence, "kind": kind, "key": key, "op": request.method, "payload": payload}
        return self._apply([change], previous)

    async def batch(self, request: Request) -> Response:
        await self._pusher(request)
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
        except SequenceMismatch as mismatch:
            raise ProblemError(
                409,
                MISMATCH,
                f"{mismatch}; resume after {mismatch.current}",
                headers={SEQUENCE: str(mismatch.current)},
                extensions={"currentSequence": mismatch.current},
            ) from None
        except MalformedChanges as malformed:
            raise ProblemError(
                400, Cause.MANDATORY_IE_INCORRECT, str(malformed), headers={SEQUENCE: str(self.state.seq)}
            ) from None
        # Table 10.X.2.6-1: the result.
        return respond(None, 204, {SEQUENCE: str(self.state.seq)})

    async def show(self, request: Request) -> Response:
        await self.authenticate(request, SCOPE)
        return Response(json.dumps(self.state.snapshot()), media_type=JSON)

    async def sequence(self, request: Request) -> Response:
        """The sequence held, for the registry's divergence check (cheaper than ``/state``)."""
        await self.authenticate(request, SCOPE)
        held = self.state.seq
        return Response(json.dumps({"sequence": held}), media_type=JSON, headers={SEQUENCE: str(held)})

    async def resync(self, request: Request) -> Response:
        """The registry says this server holds a sequence it never issued: adopt its snapshot."""
        principal = await self._pusher(request)
        _log.warning("resync asked by the registry", client=principal.client_id, sequence=self.state.seq)
        self.on_resync()
        return Response(status_code=202, headers={SEQUENCE: str(self.state.seq)})


def _header_int(request: Request, name: str, *, allow_zero: bool = False) -> int:
    """A sequence number header: ASCII digits only (no sign, no Unicode digits, no leading zeros),
    at most 2^63 - 1."""
    raw = request.headers.get(name, "")
    valid = raw.isascii() and raw.isdigit() and len(raw) <= 19 and (raw == "0" or not raw.startswith("0"))
    if not valid or int(raw) > MAX_SEQUENCE or (int(raw) == 0 and not allow_zero):
        reason = "not a sequence number" if raw else "missing"
        raise ProblemError(
            400,
            Cause.MANDATORY_IE_INCORRECT if raw else Cause.MANDATORY_IE_MISSING,
            f"{name} must be a sequence number (an integer from {0 if allow_zero else 1} to 2^63-1)",
            invalid_params=[InvalidParam(param=f"header {name}", reason=reason)],
        )
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


class ProfileFetcher:
    """Issue 14: an application may use a profile (or grant) the moment the registry tells it, which
    can be before the CSC-15 push reaches this server. Before refusing for want of CSC-15 state, the
    gate asks here: this fetches the application's profiles and grants from the registry once
    (``GET /mcx-registry-sync/v1/snapshot?appId=``) and the gate decides again.

    Bounded so that a hostile application cannot turn refusals into registry load: at most ``rate``
    fetches a second (a token bucket, burst ``rate``), one at a time per application, and an
    application whose fetch brought nothing new while nothing was pushed either (or that failed) is
    not fetched for again for ``negative_ttl`` seconds.
    """

    # Refusals that depend on what CSC-15 brought (access.policy.decide).
    CAUSES = frozenset(
        {
            "PROFILE_NOT_AUTHORIZED",
            "USER_NOT_AUTHORIZED",
            "RESOURCE_NOT_AUTHORIZED",
            "OPERATION_NOT_AUTHORIZED",
            "PRIORITY_NOT_AUTHORIZED",
        }
    )
    _MEMORY = 10_000  # applications remembered as quiet at most

    def __init__(
        self,
        state: AccessState,
        http: httpx.AsyncClient,
        registry_url: str,
        tokens: TokenSource,
        *,
        rate: float,
        negative_ttl: float,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.http = http
        self.url = f"{registry_url.rstrip('/')}/mcx-registry-sync/v1/snapshot"
        self.tokens = tokens
        self.rate = rate
        self.negative_ttl = negative_ttl
        self.timeout = timeout
        self.clock = clock
        self._budget = rate
        self._refilled = clock()
        self._quiet: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self.fetches = 0

    def wanted(self, app_id: str, cause: str) -> bool:
        """Whether a refusal for ``cause`` should wait for a fetch first (no side effects)."""
        if cause not in self.CAUSES or self.rate <= 0 or not app_id:
            return False
        if app_id in self._inflight:
            return True
        now = self.clock()
        return self._quiet.get(app_id, 0.0) <= now and self._available(now) >= 1

    def _available(self, now: float) -> float:
        return min(self.rate, self._budget + (now - self._refilled) * self.rate)

    async def fetch(self, app_id: str) -> None:
        """Fetch ``app_id``'s profiles and grants, or join the fetch under way; never raises."""
        task = self._inflight.get(app_id)
        if task is None:
            now = self.clock()
            self._budget, self._refilled = self._available(now), now
            if self._budget < 1:
                return
            self._budget -= 1
            task = self._inflight[app_id] = asyncio.create_task(self._fetch(app_id))
            task.add_done_callback(lambda _: self._inflight.pop(app_id, None))
        await asyncio.shield(task)

    async def _fetch(self, app_id: str) -> None:
        self.fetches += 1
        held = self.state.seq
        changed = False
        try:
            headers = {"Authorization": f"Bearer {await self.tokens.token(self.http)}"}
            response = await self.http.get(
                self.url, params={"appId": app_id}, headers=headers, timeout=self.timeout
            )
            response.raise_for_status()
            changed = self.state.refresh_app(app_id, response.json())
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            _log.info("fetching an application's profiles failed", app=app_id, error=type(exc).__name__)
        if changed:
            _log.info("profiles fetched ahead of CSC-15", app=app_id, sequence=self.state.fetched.get(app_id))
            return
        if self.state.seq != held:
            return  # a push arrived meanwhile (it may be what the request lacked): not a negative answer
        if len(self._quiet) >= self._MEMORY:
            now = self.clock()
            self._quiet = {a: t for a, t in self._quiet.items() if t > now}
        if len(self._quiet) < self._MEMORY:
            self._quiet[app_id] = self.clock() + self.negative_ttl
