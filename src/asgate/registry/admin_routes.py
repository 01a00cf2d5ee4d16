"""``mcx-registry-admin/v1``: the MC service provider's administrator (scope ``mcx-registry-admin``).

External applications' policies, MC user grants per application, application profile edits (each a
new version, a notification to the application and a CSC-15 update), service instances and their
health, the outbox, and the audit log. Edited resources carry an ETag; ``If-Match`` makes an update
conditional (412 when the resource changed meanwhile).
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from asgate.domain.registry import ExternalAppSpec, GrantSpec, ProfileEdit, ServiceInstance
from asgate.kernel.problem import Cause, ProblemError
from asgate.kernel.web import parse_body, path_string, query_int, query_problem, respond
from asgate.registry.models import (
    ExternalAppList,
    GrantBody,
    GrantList,
    OutboxEntry,
    Page,
    PoolInterfaceBody,
    PoolInterfaceList,
    ProfileList,
)
from asgate.registry.scripts import etag, etag_of
from asgate.registry.service import ADMIN_SCOPE, RegistryService
from asgate.store import AuditEvent
from asgate.store import registry as db
from asgate.system.runtime import Runtime

ADMIN = "/mcx-registry-admin/v1"
POOL = f"{ADMIN}/pools/{{serviceType}}/{{serviceName}}"


class _Services(Page[ServiceInstance]):
    pass


class _Outbox(Page[OutboxEntry]):
    pass


class _Audit(Page[AuditEvent]):
    pass


class AdminRoutes:
    def __init__(self, rt: Runtime, service: RegistryService) -> None:
        self.rt = rt
        self.service = service

    def routes(self) -> list[BaseRoute]:
        return [
            Route(f"{ADMIN}/apps", self.list_apps, methods=["GET"]),
            Route(f"{ADMIN}/apps/{{clientId}}", self.get_app, methods=["GET"]),
            Route(f"{ADMIN}/apps/{{clientId}}", self.put_app, methods=["PUT"]),
            Route(f"{ADMIN}/apps/{{clientId}}", self.delete_app, methods=["DELETE"]),
            Route(f"{ADMIN}/grants", self.list_grants, methods=["GET"]),
            Route(f"{ADMIN}/grants/{{appId}}/{{mcServiceId}}", self.put_grant, methods=["PUT"]),
            Route(f"{ADMIN}/grants/{{appId}}/{{mcServiceId}}", self.delete_grant, methods=["DELETE"]),
            Route(f"{ADMIN}/app-profiles", self.list_profiles, methods=["GET"]),
            Route(f"{ADMIN}/app-profiles/{{appProfileId}}", self.get_profile, methods=["GET"]),
            Route(f"{ADMIN}/app-profiles/{{appProfileId}}", self.edit_profile, methods=["PUT"]),
            Route(f"{ADMIN}/app-profiles/{{appProfileId}}", self.delete_profile, methods=["DELETE"]),
            Route(f"{ADMIN}/services", self.list_services, methods=["GET"]),
            Route(f"{ADMIN}/services/{{serviceInstanceId}}", self.get_service, methods=["GET"]),
            Route(f"{ADMIN}/services/{{serviceInstanceId}}", self.evict_service, methods=["DELETE"]),
            Route(f"{ADMIN}/pools", self.list_pools, methods=["GET"]),
            Route(f"{ADMIN}/pools/{{serviceType}}/{{serviceName}}", self.get_pool, methods=["GET"]),
            Route(f"{POOL}/approve", self.approve_pool, methods=["POST"]),
            Route(f"{POOL}/reject", self.reject_pool, methods=["POST"]),
            Route(f"{POOL}/interface", self.put_pool_interface, methods=["PUT"]),
            Route(f"{ADMIN}/outbox", self.list_outbox, methods=["GET"]),
            Route(f"{ADMIN}/outbox/{{id:int}}/retry", self.retry, methods=["POST"]),
            Route(f"{ADMIN}/audit", self.audit, methods=["GET"]),
        ]

    async def _admin(self, request: Request) -> str:
        return (await self.rt.authenticate(request, ADMIN_SCOPE)).client_id

    # ------------------------------------------------------------ external applications

    async def list_apps(self, request: Request) -> Response:
        await self._admin(request)
        apps = await self.rt.store.registry.apps()
        return respond(ExternalAppList(items=apps))

    async def get_app(self, request: Request) -> Response:
        await self._admin(request)
        app = await self.service.app(request.path_params["clientId"])
        return respond(app, headers={"ETag": etag(app.version)})

    async def put_app(self, request: Request) -> Response:
        actor = await self._admin(request)
        spec = await parse_body(request, ExternalAppSpec, self.rt.settings.max_body_bytes)
        client_id = path_string(request, "clientId", 128)  # clients.client_id
        app = await self.service.put_app(actor, client_id, spec, request.headers.get("if-match"))
        return respond(app, 201 if app.version == 1 else 200, {"ETag": etag(app.version)})

    async def delete_app(self, request: Request) -> Response:
        actor = await self._admin(request)
        await self.service.delete_app(actor, request.path_params["clientId"])
        return respond(None, 204)

    # ------------------------------------------------------------ MC user grants

    async def list_grants(self, request: Request) -> Response:
        await self._admin(request)
        q = request.query_params
        grants = await self.rt.store.registry.grants(
            app_id=q.get("app-id"), mc_service_id=q.get("mc-service-id")
        )
        return respond(GrantList(items=grants))

    async def put_grant(self, request: Request) -> Response:
        actor = await self._admin(request)
        body = await parse_body(request, GrantBody, self.rt.settings.max_body_bytes)
        spec = GrantSpec(
            app_id=path_string(request, "appId", 128),  # grants.app_id
            mc_service_id=path_string(request, "mcServiceId", 256),  # grants.mc_service_id
            services=body.services,
        )
        grant = await self.service.put_grant(actor, spec)
        return respond(grant, 201 if grant.version == 1 else 200, {"ETag": etag(grant.version)})

    async def delete_grant(self, request: Request) -> Response:
        actor = await self._admin(request)
        await self.service.delete_grant(
            actor, request.path_params["appId"], request.path_params["mcServiceId"]
        )
        return respond(None, 204)

    # ------------------------------------------------------------ application profiles

    async def list_profiles(self, request: Request) -> Response:
        await self._admin(request)
        records = await self.rt.store.registry.profiles(app_id=request.query_params.get("app-id"))
        return respond(ProfileList(items=[r.profile for r in records]))

    async def get_profile(self, request: Request) -> Response:
        await self._admin(request)
        profile = await self.service.app_profile(None, request.path_params["appProfileId"], None)
        return respond(profile, headers={"ETag": etag(profile.version)})

    async def edit_profile(self, request: Request) -> Response:
        actor = await self._admin(request)
        edit = await parse_body(request, ProfileEdit, self.rt.settings.max_body_bytes)
        profile = await self.service.edit_profile(
            actor, request.path_params["appProfileId"], edit, request.headers.get("if-match")
        )
        return respond(profile, headers={"ETag": etag(profile.version)})

    async def delete_profile(self, request: Request) -> Response:
        actor = await self._admin(request)
        await self.service.delete_profile(actor, request.path_params["appProfileId"])
        return respond(None, 204)

    # ------------------------------------------------------------ services

    async def list_services(self, request: Request) -> Response:
        await self._admin(request)
        q = request.query_params
        limit = query_int(request, "limit", 100, 1, 1000)
        records = await self.rt.store.registry.instances(
            after=q.get("after"),
            limit=limit,
            service_type=q.get("service-type"),
            client_id=q.get("client-id"),
        )
        cursor = records[-1].service_instance_id if len(records) == limit else None
        return respond(_Services(items=[r.view() for r in records], next=cursor))

    async def get_service(self, request: Request) -> Response:
        await self._admin(request)
        instance, version = await self.service.instance(None, request.path_params["serviceInstanceId"])
        return respond(instance, headers={"ETag": etag(version)})

    async def evict_service(self, request: Request) -> Response:
        actor = await self._admin(request)
        await self.service.evict(actor, request.path_params["serviceInstanceId"])
        return respond(None, 204)

    # ------------------------------------------------------------ pool interfaces (issue 8 item 1)

    async def list_pools(self, request: Request) -> Response:
        await self._admin(request)
        state = request.query_params.get("state")
        if state is not None and state not in _POOL_STATES:
            raise query_problem("state", f"must be one of {', '.join(_POOL_STATES)}")
        items = await self.service.pool_interfaces()
        return respond(PoolInterfaceList(items=[i for i in items if state in (None, i.state)]))

    async def get_pool(self, request: Request) -> Response:
        await self._admin(request)
        pool = _pool(request)
        found = await self.service.pool_interfaces(pool)
        if not found:
            raise ProblemError(404, Cause.CONTEXT_NOT_FOUND, f"no pool {'/'.join(pool)}")
        return respond(found[0], headers={"ETag": etag_of(found[0].digest)})

    async def approve_pool(self, request: Request) -> Response:
        actor = await self._admin(request)
        item = await self.service.approve_pool(actor, _pool(request), request.headers.get("if-match"))
        return respond(item, headers={"ETag": etag_of(item.digest)})

    async def reject_pool(self, request: Request) -> Response:
        actor = await self._admin(request)
        item = await self.service.reject_pool(actor, _pool(request), request.headers.get("if-match"))
        return respond(item, headers={"ETag": etag_of(item.digest)})

    async def put_pool_interface(self, request: Request) -> Response:
        actor = await self._admin(request)
        body = await parse_body(request, PoolInterfaceBody, self.rt.settings.max_body_bytes)
        item = await self.service.put_pool_interface(actor, _pool(request), body.versions)
        return respond(item, headers={"ETag": etag_of(item.digest)})

    # ------------------------------------------------------------ outbox and audit

    async def list_outbox(self, request: Request) -> Response:
        await self._admin(request)
        q = request.query_params
        limit = query_int(request, "limit", 100, 1, 1000)
        after = query_int(request, "after", 0, 0, 2**62) if "after" in q else None
        state = q.get("state")
        if state is not None and state not in _NOTIFICATION_STATES:  # else a typo shows nothing pending
            raise query_problem("state", f"must be one of {', '.join(_NOTIFICATION_STATES)}")
        entries = [_notification_entry(d) for d in await self.rt.store.registry.deliveries(
            state=state, app_id=q.get("app-id"), after=after, limit=limit
        )]  # fmt: skip
        if after is None and q.get("app-id") is None:
            entries += [_target_entry(t) for t in await self.rt.store.registry.targets()]
        cursor = str(entries[-1].id) if len(entries) >= limit and entries[-1].kind == "notification" else None
        return respond(_Outbox(items=entries, next=cursor))

    async def retry(self, request: Request) -> Response:
        await self._admin(request)
        ok = await self.service.retry_notification(request.path_params["id"])
        if not ok:
            raise ProblemError(404, Cause.CONTEXT_NOT_FOUND, "no pending notification with that id")
        return respond(None, 204)

    async def audit(self, request: Request) -> Response:
        await self._admin(request)
        q = request.query_params
        limit = query_int(request, "limit", 100, 1, 1000)
        after = query_int(request, "after", 0, 0, 2**62) if "after" in q else None
        events = await self.rt.store.audit.scan(
            after=after, limit=limit, resource=q.get("resource"), actor=q.get("actor"), action=q.get("action")
        )
        cursor = str(events[-1].id) if len(events) == limit else None
        return respond(_Audit(items=events, next=cursor))


_NOTIFICATION_STATES = ("PENDING", "DELIVERED", "SUPERSEDED")
_POOL_STATES = ("APPROVED", "PENDING", "REJECTED")


def _pool(request: Request) -> tuple[str, str]:
    return request.path_params["serviceType"], request.path_params["serviceName"]


def _notification_entry(d: db.Delivery) -> OutboxEntry:
    return OutboxEntry(
        id=d.id,
        kind="notification",
        target=d.app_id,
        destination=d.destination,
        state=d.state,
        attempts=d.attempts,
        next_attempt_at=datetime.fromtimestamp(d.next_attempt_at, UTC) if d.state == "PENDING" else None,
        last_error=d.last_error,
        created_at=d.created_at,
        delivered_at=d.delivered_at,
        details={"appProfileId": d.app_profile_id, "version": d.version},
    )


def _target_entry(t: db.TargetState) -> OutboxEntry:
    return OutboxEntry(
        id=0,
        kind="csc15",
        target=t.url,
        destination=t.url,
        state="RETRYING" if t.attempts else "OK",
        attempts=t.attempts,
        next_attempt_at=datetime.fromtimestamp(t.next_attempt_at, UTC) if t.attempts else None,
        last_error=t.last_error,
        created_at=t.last_success_at or datetime.fromtimestamp(0, UTC),
        delivered_at=t.last_success_at,
        details={"ackedSequence": t.acked_seq},
    )
