"""Access servers register themselves with the registry (issue 10 §2): ``PUT`` and ``DELETE
/mcx-registry-sync/v1/access-servers/{sasId}`` (the registration again every few seconds is the
heartbeat), and the administrator's view, ``GET /mcx-registry-admin/v1/access-servers``.

The registry pushes CSC-15 to every access server heard from within ``registry_sas_timeout``
(:func:`live_urls`, the pusher's ``registered`` targets), besides the static
``registry_sas_push_urls``. Only clients named by ``registry_sas_clients`` (tokens of this
deployment's issuer, scope ``mcx-access-profiles``) may register; an ID belongs to the client that
registered it; the URL passes the outbound URI policy; at most ``registry_sas_max`` are registered.
The decisions (:func:`register`, :func:`deregister`) take a ``tx`` and are table-tested with a fake.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from asgate.auth.tokens import Principal
from asgate.kernel import logs
from asgate.kernel.problem import Cause, InvalidParam, ProblemError
from asgate.kernel.uripolicy import refused
from asgate.kernel.web import parse_body, respond
from asgate.kernel.wire import WireModel
from asgate.registry.service import ADMIN_SCOPE, SYNC_SCOPE
from asgate.registry.sync import Pusher, last_csc15_seq
from asgate.store import Store
from asgate.store.registry import AccessServerRecord, TargetState
from asgate.store.tx import Tx
from asgate.system.runtime import Runtime

_log = logs.get("asgate.registry.access_servers")
SYNC = "/mcx-registry-sync/v1"
ADMIN = "/mcx-registry-admin/v1"
SAS_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
NOT_ALLOWED = "ACCESS_SERVER_CLIENT_NOT_ALLOWED"
NOT_OWNED = "ACCESS_SERVER_NOT_OWNED"
TOO_MANY = "TOO_MANY_ACCESS_SERVERS"


class AccessServerRegistration(WireModel):
    """What an access server registers: where the registry pushes CSC-15 (its control plane)."""

    csc15_uri: str = Field(min_length=1, max_length=512)


class AccessServerRegistered(WireModel):
    sas_id: str
    csc15_uri: str
    timeout: float  # seconds: the access server is dropped from the targets when silent this long


class AccessServerInfo(WireModel):
    """One CSC-15 target as the administrator sees it."""

    csc15_uri: str
    live: bool
    static: bool = False  # from registry_sas_push_urls
    sas_id: str | None = None
    owner: str | None = None
    registered_at: datetime | None = None
    last_seen_at: datetime | None = None
    acked_sequence: int | None = None
    lag: int | None = None  # CSC-15 changes not acknowledged yet
    attempts: int = 0
    last_error: str | None = None
    last_success_at: datetime | None = None
    pushed_by: str | None = None  # the registry process holding the push lease


class AccessServerList(WireModel):
    sequence: int
    items: list[AccessServerInfo]


# ------------------------------------------------------------------ decisions (on a tx)


def register(
    tx: Tx, *, sas_id: str, owner: str, url: str, now: datetime, limit: int, timeout: float
) -> Literal["created", "refreshed", "moved"]:
    """Register ``sas_id`` at ``url`` for ``owner``, or refresh it (the heartbeat). An ID belongs to
    the client that registered it; a new one past ``limit`` first makes room by forgetting the
    access servers silent for longer than ``timeout`` (their cursors stay)."""
    found = tx.access_servers.get(sas_id)
    if found is not None and found.owner != owner:
        raise ProblemError(403, NOT_OWNED, f"access server {sas_id!r} was registered by another client")
    if found is not None:
        tx.access_servers.seen(sas_id, url, now)
        if found.url == url:
            return "refreshed"
        tx.audit.append(owner, "access-server.move", f"access-server/{sas_id}", details={"url": url})
        return "moved"
    if tx.access_servers.count() >= limit:
        tx.access_servers.forget_silent(now - timedelta(seconds=timeout))
        if tx.access_servers.count() >= limit:
            raise ProblemError(403, TOO_MANY, f"at most {limit} access servers may be registered")
    tx.access_servers.add(AccessServerRecord(sas_id, owner, url, now, now))
    tx.audit.append(owner, "access-server.register", f"access-server/{sas_id}", details={"url": url})
    return "created"


def deregister(tx: Tx, *, sas_id: str, owner: str) -> None:
    """Remove ``sas_id`` (its owner only); its cursor stays, so a comeback resumes from it."""
    found = tx.access_servers.get(sas_id)
    if found is None:
        raise ProblemError(404, Cause.CONTEXT_NOT_FOUND, f"no access server {sas_id!r}")
    if found.owner != owner:
        raise ProblemError(403, NOT_OWNED, f"access server {sas_id!r} was registered by another client")
    tx.access_servers.remove(sas_id)
    tx.audit.append(owner, "access-server.deregister", f"access-server/{sas_id}")


def is_live(record: AccessServerRecord, now: datetime, timeout: float) -> bool:
    return record.last_seen_at > now - timedelta(seconds=timeout)


async def live_urls(store: Store, timeout: float) -> list[str]:
    """Where the live registered access servers take CSC-15 (the pusher's ``registered``)."""
    now = datetime.now(UTC)
    urls = [r.url for r in await store.registry.access_servers() if is_live(r, now, timeout)]
    return list(dict.fromkeys(urls))


async def overview(store: Store, pusher_static: list[str], timeout: float) -> AccessServerList:
    """Every CSC-15 target, registered or static, with its cursor and lag."""
    now = datetime.now(UTC)
    sequence = await last_csc15_seq(store)
    cursors = {t.url: t for t in await store.registry.targets()}
    items = [
        _info(r.url, cursors.get(r.url), sequence, live=is_live(r, now, timeout), record=r)
        for r in await store.registry.access_servers()
    ]
    items += [_info(url, cursors.get(url), sequence, live=True, static=True) for url in pusher_static]
    return AccessServerList(sequence=sequence, items=items)


def _info(
    url: str,
    cursor: TargetState | None,
    sequence: int,
    *,
    live: bool,
    static: bool = False,
    record: AccessServerRecord | None = None,
) -> AccessServerInfo:
    leased = cursor is not None and cursor.holder is not None and (cursor.lease_until or 0) > _epoch()
    return AccessServerInfo(
        csc15_uri=url,
        live=live,
        static=static,
        sas_id=record.sas_id if record else None,
        owner=record.owner if record else None,
        registered_at=record.registered_at if record else None,
        last_seen_at=record.last_seen_at if record else None,
        acked_sequence=cursor.acked_seq if cursor else None,
        lag=max(0, sequence - cursor.acked_seq) if cursor else None,
        attempts=cursor.attempts if cursor else 0,
        last_error=cursor.last_error if cursor else None,
        last_success_at=cursor.last_success_at if cursor else None,
        pushed_by=cursor.holder if cursor and leased else None,
    )


def _epoch() -> float:
    return datetime.now(UTC).timestamp()


# ------------------------------------------------------------------ HTTP


class AccessServerRoutes:
    def __init__(self, rt: Runtime, pusher: Pusher, static: list[str]) -> None:
        self.rt = rt
        self.pusher = pusher
        self.static = static

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{SYNC}/access-servers/{{sasId}}", self.put, methods=["PUT"]),
            Route(f"{SYNC}/access-servers/{{sasId}}", self.delete, methods=["DELETE"]),
            Route(f"{ADMIN}/access-servers", self.list, methods=["GET"]),
        ]

    async def _registrant(self, request: Request) -> Principal:
        """A client named by ``registry_sas_clients``, with a token of this deployment's issuer."""
        principal = await self.rt.authenticate(request, SYNC_SCOPE)
        s = self.rt.settings
        named = any(fnmatchcase(principal.client_id, pattern) for pattern in s.registry_sas_clients)
        if not named or principal.issuer != s.token_issuer:
            await self._audit_denied(
                principal.client_id, request, f"{NOT_ALLOWED}: not an access server client"
            )
            _log.warning("access server registration from a client not allowed", client=principal.client_id)
            raise ProblemError(403, NOT_ALLOWED, "this client may not register access servers")
        return principal

    async def _audit_denied(self, actor: str, request: Request, reason: str) -> None:
        resource = f"access-server/{str(request.path_params.get('sasId', ''))[:64]}"

        def audit(tx: Tx) -> None:
            tx.audit.append(
                actor, f"access-server.{request.method.lower()}", resource, "denied", reason=reason
            )

        await self.rt.store.write(audit)

    async def put(self, request: Request) -> Response:
        principal = await self._registrant(request)
        sas_id = _sas_id(request)
        body = await parse_body(request, AccessServerRegistration, self.rt.settings.max_body_bytes)
        url = _push_url(self.rt, body.csc15_uri)
        s = self.rt.settings
        now = datetime.now(UTC)
        try:
            outcome = await self.rt.store.write(
                lambda tx: register(
                    tx,
                    sas_id=sas_id,
                    owner=principal.client_id,
                    url=url,
                    now=now,
                    limit=s.registry_sas_max,
                    timeout=s.registry_sas_timeout,
                )
            )
        except ProblemError as refusal:
            await self._audit_denied(principal.client_id, request, f"{refusal.cause}: {refusal.detail}")
            raise
        if outcome != "refreshed":
            _log.info("access server registered", sas=sas_id, url=url, client=principal.client_id)
            self.pusher.refresh()
        answer = AccessServerRegistered(sas_id=sas_id, csc15_uri=url, timeout=s.registry_sas_timeout)
        return respond(answer, 201 if outcome == "created" else 200)

    async def delete(self, request: Request) -> Response:
        principal = await self._registrant(request)
        sas_id = _sas_id(request)
        try:
            await self.rt.store.write(lambda tx: deregister(tx, sas_id=sas_id, owner=principal.client_id))
        except ProblemError as refusal:
            if refusal.status == 403:
                await self._audit_denied(principal.client_id, request, f"{refusal.cause}: {refusal.detail}")
            raise
        _log.info("access server deregistered", sas=sas_id, client=principal.client_id)
        self.pusher.refresh()
        return respond(None, 204)

    async def list(self, request: Request) -> Response:
        await self.rt.authenticate(request, ADMIN_SCOPE)
        found = await overview(self.rt.store, self.static, self.rt.settings.registry_sas_timeout)
        return respond(found)


def _sas_id(request: Request) -> str:
    value = str(request.path_params["sasId"])
    if not SAS_ID.fullmatch(value):
        raise ProblemError(
            400, Cause.MANDATORY_IE_INCORRECT, "sasId: 1 to 64 letters, digits, '.', '_' or '-'",
            invalid_params=[InvalidParam(param="path sasId", reason="not an access server ID")],
        )  # fmt: skip
    return value


def _push_url(rt: Runtime, raw: str) -> str:
    """The CSC-15 URL, as the pusher uses it: the outbound policy's, without query or fragment."""
    reason = rt.uri_policy.check(raw)
    if reason is None:
        parts = urlsplit(raw)
        if parts.query or parts.fragment or raw.endswith("?") or raw.endswith("#"):
            reason = "a query or fragment is not allowed: the registry appends the CSC-15 paths"
    if reason is not None:
        raise refused("/csc15Uri", reason)
    return raw.rstrip("/")
