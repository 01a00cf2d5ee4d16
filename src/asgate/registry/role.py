"""HTTP adapters of the service registry server: ``mcx-service-registration/v1`` (MC services),
``mcx-registry/v1`` (CSC-14, external applications), ``mcx-registry-admin/v1`` (administrator) and
``mcx-registry-sync/v1`` (the snapshot service access servers pull, where they register themselves),
plus its background workers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgate.domain.registry import ServiceRegistration
from asgate.idm.internal import InternalTokens
from asgate.kernel import logs
from asgate.kernel.background import Background
from asgate.kernel.problem import Cause, ProblemError
from asgate.kernel.web import JSON, parse_body, query_int, query_problem, respond
from asgate.registry import admin_routes
from asgate.registry.access_servers import AccessServerRoutes, live_urls
from asgate.registry.discovery import Query
from asgate.registry.hub import NotificationHub
from asgate.registry.lifecycle import Liveness
from asgate.registry.metrics import RegistryMetrics
from asgate.registry.models import AuthorizationRequest, ServiceInformationList
from asgate.registry.notify import Notifier
from asgate.registry.scripts import CSC15_KINDS, etag
from asgate.registry.service import APP_SCOPE, SERVICE_SCOPE, SYNC_SCOPE, RegistryService
from asgate.registry.sync import Pusher, app_snapshot, last_csc15_seq, snapshot
from asgate.store.signals import OUTBOX
from asgate.system.runtime import Runtime

_log = logs.get("asgate.registry")
SERVICES = "/mcx-service-registration/v1/services"
REGISTRY = "/mcx-registry/v1"
SYNC = "/mcx-registry-sync/v1"


class RegistryRole:
    name = "registry"
    apis = ("mcx-service-registration", "mcx-registry", "mcx-registry-admin", "mcx-registry-sync")

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        s = rt.settings
        self.metrics = RegistryMetrics(rt.metrics, rt.store, CSC15_KINDS)
        self.hub = NotificationHub(owner=self._notification_owner, on_refused=self._ack_refused)
        self.service = RegistryService(
            rt.store,
            rt.uri_policy,
            liveness=Liveness(s.registry_missed_heartbeats, s.registry_removal_grace),
            sas_url=s.registry_sas_url or f"http://{s.sas_listen}",
            api_root=s.public_root,
            on_change=self._changed,
            addresses=rt.instance_policy,
        )
        self.notifier = Notifier(
            rt.store,
            rt.uri_policy,
            rt.callback_session,
            self.hub,
            s.public_root,
            concurrency=s.registry_notify_concurrency,
            timeout=s.registry_notify_timeout,
            retry_base=s.registry_retry_base,
            retry_max=s.registry_retry_max,
            on_delivery=self.metrics.delivered,
        )
        # CSC-15 targets: the access servers that register themselves (issue 10), plus static ones.
        targets = list(s.registry_sas_push_urls) or ([s.public_root] if "access" in rt.role_names else [])
        tokens = InternalTokens(
            rt.keyring,
            issuer=s.token_issuer,
            audience=s.token_audience,
            subject="asgate-registry",
            scope=SYNC_SCOPE,
        )
        self.pusher = Pusher(
            rt.store,
            rt.http,
            targets,
            tokens,
            registered=partial(live_urls, rt.store, s.registry_sas_timeout),
            lease=s.registry_sas_lease,
            check_interval=s.registry_sas_check_interval,
            metrics=rt.metrics.registry,
        )
        self.access_servers = AccessServerRoutes(rt, self.pusher, [t.rstrip("/") for t in targets])
        self.admin = admin_routes.AdminRoutes(rt, self.service)
        self.background = Background()
        self._look = asyncio.Event()  # the watcher's wake-up: another process committed a change
        # Other processes' commits wake this one's loops at once (PostgreSQL: LISTEN/NOTIFY).
        self.listener = rt.store.listener(self._signalled)

    async def _notification_owner(self, notification_id: int) -> str | None:
        found = await self.rt.store.registry.deliveries(after=notification_id - 1, limit=1)
        return found[0].app_id if found and found[0].id == notification_id else None

    async def _ack_refused(self, app_id: str, notification_id: int, reason: str) -> None:
        resource = f"notification/{notification_id}"
        await self.rt.store.write(
            lambda tx: tx.audit.append(app_id, "notification.ack", resource, "denied", reason=reason)
        )

    def _changed(self) -> None:
        self.notifier.wake()
        self.pusher.wake()

    def _signalled(self, topic: str) -> None:
        """Another process committed notifications (``outbox``) or changes: deliver and look now."""
        self.notifier.wake()
        if topic != OUTBOX:
            self._look.set()

    def routes(self) -> list[BaseRoute]:
        return [
            Route(SERVICES, self.register, methods=["POST"]),
            Route(f"{SERVICES}/{{serviceInstanceId}}", self.get_instance, methods=["GET"]),
            Route(f"{SERVICES}/{{serviceInstanceId}}", self.update, methods=["PUT"]),
            Route(f"{SERVICES}/{{serviceInstanceId}}", self.deregister, methods=["DELETE"]),
            Route(f"{SERVICES}/{{serviceInstanceId}}/heartbeat", self.heartbeat, methods=["PUT"]),
            Route(f"{REGISTRY}/service-information", self.service_information, methods=["GET"]),
            Route(f"{REGISTRY}/authorizations", self.authorizations, methods=["POST"]),
            Route(f"{REGISTRY}/app-profiles/{{appProfileId}}", self.app_profile, methods=["GET"]),
            WebSocketRoute(f"{REGISTRY}/notifications", self.notifications),
            Route(f"{REGISTRY}/notifications", self.notifications_without_upgrade, methods=["GET"]),
            Route(f"{SYNC}/snapshot", self.snapshot, methods=["GET"]),
            Route(f"{SYNC}/revocations", self.revocations, methods=["GET"]),
            *self.access_servers.routes(),
            *self.admin.routes(),
        ]

    async def start(self) -> None:
        await self.service.start()
        s = self.rt.settings
        background = self.background
        background.spawn(
            _every(background, s.registry_sweep_interval, self.service.sweep), "registry-sweeper"
        )
        background.spawn(self._watch(background, s.registry_poll_interval), "registry-watcher")
        background.spawn(self.notifier.run(background, s.registry_poll_interval), "registry-notifier")
        background.spawn(self.pusher.run(background), "registry-csc15")
        if self.listener is not None:
            background.spawn(self.listener.run(background), "registry-signals")

    async def stop(self) -> None:
        await self.background.stop()

    async def _watch(self, background: Background, poll: float) -> None:
        """Changes by other processes and by the administrator CLI reach this process's view here:
        when signalled, else every ``poll`` seconds."""
        while await background.pause(poll, self._look):
            self._look.clear()
            try:
                if await self.service.view.refresh():
                    self._changed()
            except Exception:  # noqa: BLE001 - a periodic worker must survive a failed round
                _log.exception("periodic task failed", task="watch")

    # ------------------------------------------------------------ mcx-service-registration

    async def register(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, SERVICE_SCOPE)
        with self.metrics.registration("register"):
            body = await parse_body(request, ServiceRegistration, self.rt.settings.max_body_bytes)
            instance = await self.service.register(principal, body)
        location = f"{self.rt.api_root(request.scope)}{SERVICES}/{instance.service_instance_id}"
        return respond(instance, 201, {"Location": location, "ETag": etag(1)})

    async def get_instance(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, SERVICE_SCOPE)
        instance, version = await self.service.instance(principal, request.path_params["serviceInstanceId"])
        return respond(instance, headers={"ETag": etag(version)})

    async def update(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, SERVICE_SCOPE)
        with self.metrics.registration("update"):
            body = await parse_body(request, ServiceRegistration, self.rt.settings.max_body_bytes)
            instance, version = await self.service.update(
                principal, request.path_params["serviceInstanceId"], body, request.headers.get("if-match")
            )
        return respond(instance, headers={"ETag": etag(version)})

    async def deregister(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, SERVICE_SCOPE)
        with self.metrics.registration("deregister"):
            await self.service.deregister(principal, request.path_params["serviceInstanceId"])
        return respond(None, 204)

    async def heartbeat(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, SERVICE_SCOPE)
        with self.metrics.heartbeat():
            await self.service.heartbeat(principal, request.path_params["serviceInstanceId"])
        return respond(None, 204)

    # ------------------------------------------------------------ mcx-registry (CSC-14)

    async def service_information(self, request: Request) -> Response:
        with self.metrics.discovering():
            return await self._service_information(request)

    async def _service_information(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, APP_SCOPE)
        query = request.query_params
        mc_service_id = query.get("mc-service-id")
        if not mc_service_id:  # Table 10.X.2.1-1: MC service ID is mandatory
            raise query_problem("mc-service-id", "the MC service ID of the user is mandatory")
        environment: dict[str, str] = {}
        for item in query.getlist("environment"):
            key, sep, value = item.partition(":")
            if not sep or not key:
                raise query_problem("environment", "use environment=KEY:VALUE")
            environment[key] = value
        found = self.service.service_information(
            principal,
            mc_service_id,
            Query(
                service_type=query.get("service-type"),
                service_name=query.get("service-name"),
                reference_point=query.get("reference-point"),
                protocol=query.get("protocol"),
                api_version=query.get("api-version"),
                capability=query.get("capability"),
                environment=environment,
            ),
        )
        return respond(ServiceInformationList(service_information=found))

    async def authorizations(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, APP_SCOPE)
        body = await parse_body(request, AuthorizationRequest, self.rt.settings.max_body_bytes)
        answer = await self.service.update_authorization(principal, body)
        await self._sas_caught_up()
        return respond(answer)

    async def app_profile(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, APP_SCOPE)
        version = query_int(request, "version", 0, 1, 2**31) if "version" in request.query_params else None
        profile = await self.service.app_profile(principal, request.path_params["appProfileId"], version)
        await self._sas_caught_up()  # seed 10.X.4: the version the application reconfigures to
        return respond(profile, headers={"ETag": etag(profile.version)})

    async def _sas_caught_up(self) -> None:
        """Issue 14: an application must be able to use at once what the registry tells it, so the
        answer waits (at most ``registry_sas_ack_wait``) until every live access server has
        acknowledged the newest CSC-15 change, which carries it; the access server's fetch on a
        miss (``asgate.access.csc15.ProfileFetcher``) covers the rest."""
        wait = self.rt.settings.registry_sas_ack_wait
        if wait > 0 and self.pusher.targets:
            await self.pusher.delivered(await last_csc15_seq(self.rt.store), wait)

    async def notifications(self, websocket: WebSocket) -> None:
        try:
            principal = await self.rt.authenticate(websocket, APP_SCOPE)
        except ProblemError:
            await websocket.close(code=1008)  # RFC 6455 7.4.1: policy violation
            return
        await self.hub.serve(websocket, principal.client_id, self.notifier.wake)

    async def notifications_without_upgrade(self, request: Request) -> Response:
        # Not a 404: the resource exists, as a WebSocket (RFC 9110 15.5.22, RFC 6455 4.1).
        await self.rt.authenticate(request, APP_SCOPE)
        raise ProblemError(
            426,
            Cause.UNSPECIFIED_MSG_FAILURE,
            "notifications are sent over a WebSocket: upgrade the connection",
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )

    # ------------------------------------------------------------ mcx-registry-sync

    async def snapshot(self, request: Request) -> Response:
        await self.rt.authenticate(request, SYNC_SCOPE)
        app_id = request.query_params.get("appId")
        if app_id is not None:  # one application's part (issue 14: the access server met a miss)
            if not app_id or len(app_id) > 128:  # clients.client_id; never cut to another id
                raise query_problem("appId", "an application's client ID: 1 to 128 characters")
            body = await self.rt.store.write(lambda tx: app_snapshot(tx, app_id=app_id))
            return Response(json.dumps(body), media_type=JSON)
        body = await self.rt.store.write(snapshot)
        return Response(json.dumps(body), media_type=JSON)

    # RFC 7009: the revoked access tokens an access server must refuse (asgate.auth.revocation).
    async def revocations(self, request: Request) -> Response:
        await self.rt.authenticate(request, SYNC_SCOPE)
        since = _since(request.query_params.get("since"))
        found = await self.rt.store.oidc.revoked_since(since, datetime.now(UTC))
        items = [
            {
                "kind": r.kind,
                "id": r.ident,
                "revokedAt": r.revoked_at.isoformat(),
                "expiresAt": r.until.isoformat(),
            }
            for r in found
        ]
        return Response(
            json.dumps({"revocations": items}), media_type=JSON, headers={"Cache-Control": "no-store"}
        )


def _since(raw: str | None) -> datetime | None:
    if raw is None:
        return None
    try:
        since = datetime.fromisoformat(raw) if len(raw) <= 40 else None
    except ValueError:
        since = None
    if since is None or since.tzinfo is None:
        raise query_problem("since", "an RFC 3339 date-time with a UTC offset")
    return since


async def _every(background: Background, seconds: float, action: Callable[[], Awaitable[Any]]) -> None:
    while await background.pause(seconds):
        try:
            await action()
        except Exception:  # noqa: BLE001 - a periodic worker must survive a failed round
            _log.exception("periodic task failed", task=getattr(action, "__name__", "?"))
