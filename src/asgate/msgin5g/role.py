"""HTTP adapters for ``msgs-asregistration/v1`` (TS 29.538 6.1) and ``msgs-admin/v1``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from asgate.kernel.problem import ProblemDetails
from asgate.kernel.web import parse_body, query_int, respond
from asgate.msgin5g.models import ASRegistration, ASRegistrationAck, RegistrationPage
from asgate.msgin5g.service import ADMIN_SCOPE, SCOPE, MsgsService
from asgate.system.runtime import Runtime

API = "msgs-asregistration"
ADMIN_API = "msgs-admin"


class MsgsRole:
    name = "msgin5g"
    apis = (API, ADMIN_API)

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.service = MsgsService(rt.store, rt.uri_policy, rt.metrics)
        self.mtls = rt.settings.msgs_mtls_only

    def routes(self) -> list[BaseRoute]:
        root, admin = f"/{API}/v1", f"/{ADMIN_API}/v1"
        return [
            Route(f"{root}/registrations", self.register, methods=["POST"]),
            Route(f"{root}/registrations/{{registrationId}}", self.deregister, methods=["DELETE"]),
            Route(f"{admin}/registrations", self.admin_list, methods=["GET"]),
            Route(f"{admin}/registrations/{{registrationId}}", self.admin_get, methods=["GET"]),
            Route(f"{admin}/registrations/{{registrationId}}", self.admin_evict, methods=["DELETE"]),
        ]

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    # TS 29.538 6.1.3.2.3.1: POST creates an individual AS registration.
    async def register(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, SCOPE, allow_mtls=self.mtls)
        body = await parse_body(request, ASRegistration, self.rt.settings.max_body_bytes)
        registration = await self.service.register(principal, body)
        location = f"{self.rt.api_root(request.scope)}/{API}/v1/registrations/{registration.registration_id}"
        ack = ASRegistrationAck(
            as_svc_id=registration.as_svc_id, result=ProblemDetails(status=201, title="Created")
        )
        return respond(ack, 201, {"Location": location})

    # TS 29.538 6.1.3.3.3.1: DELETE removes it; 200 with an ack (Rel-17 and Rel-18) or 204 (Rel-18).
    async def deregister(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, SCOPE, allow_mtls=self.mtls)
        registration = await self.service.deregister(principal, request.path_params["registrationId"])
        if self.rt.settings.msgs_delete_status == 204:
            return respond(None, 204)
        return respond(
            ASRegistrationAck(as_svc_id=registration.as_svc_id, result=ProblemDetails(status=200, title="OK"))
        )

    async def admin_list(self, request: Request) -> Response:
        await self.rt.authenticate(request, ADMIN_SCOPE)
        query = request.query_params
        items, cursor = await self.service.page(
            after=query.get("after"),
            limit=query_int(request, "limit", 100, 1, 1000),
            client_id=query.get("client-id"),
            as_svc_id=query.get("as-svc-id"),
        )
        return respond(RegistrationPage(items=items, next=cursor))

    async def admin_get(self, request: Request) -> Response:
        await self.rt.authenticate(request, ADMIN_SCOPE)
        return respond(await self.service.get(request.path_params["registrationId"]))

    async def admin_evict(self, request: Request) -> Response:
        principal = await self.rt.authenticate(request, ADMIN_SCOPE)
        await self.service.evict(principal.client_id, request.path_params["registrationId"])
        return respond(None, 204)
