"""Sample configuration management server (CM, reference point CSC-4, HTTP): one configuration
document (any JSON object) per MC user, in memory.

    GET /cm/configurations/me           the caller's document (404 until one is stored)
    PUT /cm/configurations/me           store it: 201 the first time, then 200; ETag = version,
                                        If-Match refuses a stale write (412)
    GET /cm/configurations              administrators: every document
    GET /cm/configurations/{user}       administrators, or the user themself

Administrators are MC users named when the state is built (default ``admin@mc.example``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgate.domain.registry import Resource
from asgate.kernel.problem import Cause, ProblemError
from asgate.kernel.web import respond
from asgate.kernel.wire import WireModel
from asgate.samples.common import (
    Sample,
    SampleSpec,
    Verify,
    build_sample,
    caller,
    forbidden,
    json_object,
    not_found,
)

PREFIX = "/cm"
DEFAULT_ADMINS = ("admin@mc.example",)


class Configuration(WireModel):
    mc_service_id: str
    document: dict[str, Any]
    version: int
    updated_at: datetime
    updated_by: str | None = None  # the application that wrote it (Asgate-Application)


class ConfigurationList(WireModel):
    configurations: list[Configuration]


@dataclass
class Configurations:
    """The documents of one CM pool (shared by its instances)."""

    admins: Collection[str] = DEFAULT_ADMINS
    documents: dict[str, Configuration] = field(default_factory=dict)


def _etag(config: Configuration) -> dict[str, str]:
    return {"ETag": f'"{config.version}"'}


def create(instance: str, state: Configurations, verify: Verify) -> Sample:
    """A CM instance serving ``state``."""

    def readable(user: str, owner: str) -> Configuration:
        if user != owner and user not in state.admins:
            raise forbidden(f"{user} may read only its own configuration")
        config = state.documents.get(owner)
        if config is None:
            raise not_found(f"configuration for {owner}")
        return config

    async def get_mine(request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        config = readable(user, user)
        return respond(config, headers=_etag(config))

    async def put_mine(request: Request) -> Response:
        who = await caller(request)
        document = await json_object(request)
        current = state.documents.get(who.mc_service_id)
        if_match = request.headers.get("if-match")
        if if_match is not None and (current is None or if_match not in ("*", _etag(current)["ETag"])):
            raise ProblemError(412, Cause.PRECONDITION_FAILED, "the configuration changed since you read it")
        config = Configuration(
            mc_service_id=who.mc_service_id,
            document=document,
            version=(current.version + 1) if current else 1,
            updated_at=datetime.now(UTC),
            updated_by=who.application,
        )
        state.documents[who.mc_service_id] = config
        return respond(
            config, 200 if current else 201, {**_etag(config), "Location": f"{PREFIX}/configurations/me"}
        )

    async def list_all(request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        if user not in state.admins:
            raise forbidden("only administrators may list configurations")
        return respond(ConfigurationList(configurations=list(state.documents.values())))

    async def get_one(request: Request) -> Response:
        config = readable((await caller(request)).mc_service_id, request.path_params["user"])
        return respond(config, headers=_etag(config))

    return build_sample(
        instance,
        [
            Route(f"{PREFIX}/configurations/me", get_mine, methods=["GET"]),
            Route(f"{PREFIX}/configurations/me", put_mine, methods=["PUT"]),
            Route(f"{PREFIX}/configurations", list_all, methods=["GET"]),
            Route(f"{PREFIX}/configurations/{{user}}", get_one, methods=["GET"]),
        ],
        verify,
    )


SPEC = SampleSpec(
    name="cm",
    service_type="CM",
    reference_point="CSC-4",
    protocol="HTTP",
    api_prefix=PREFIX,
    resources=(
        Resource(
            resource_name="my-configuration",
            comm_type="REQUEST_RESPONSE",
            uri="/configurations/me",
            operations=["GET", "PUT"],
        ),
        Resource(
            resource_name="configurations",
            comm_type="REQUEST_RESPONSE",
            uri="/configurations",
            operations=["GET"],
        ),
        Resource(
            resource_name="configuration",
            comm_type="REQUEST_RESPONSE",
            uri="/configurations/{mcServiceId}",
            operations=["GET"],
        ),
    ),
    new_state=Configurations,
    create=create,
)
