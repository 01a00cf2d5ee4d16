"""Sample group management server (GM, reference point CSC-2, HTTP), groups kept in memory.

    GET    /gm/groups                             the groups the caller owns or belongs to
    POST   /gm/groups                             {"groupId", "displayName"?, "members"?} -> 201
    GET    /gm/groups/{groupId}                   owner or member
    DELETE /gm/groups/{groupId}                   owner -> 204
    PUT    /gm/groups/{groupId}/members/{user}    owner adds a member -> 200 group
    DELETE /gm/groups/{groupId}/members/{user}    owner, or the member leaving -> 200 group

The caller is the MC user the SAS forwards in ``Asgate-MC-Service-Id``; the creator owns the
group and is its first member.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from asgate.domain.registry import Resource
from asgate.kernel.problem import Cause, ProblemError
from asgate.kernel.web import parse_body, respond
from asgate.kernel.wire import WireModel
from asgate.samples.common import Sample, SampleSpec, Verify, build_sample, caller, forbidden, not_found

PREFIX = "/gm"
_ID = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"


class GroupCreate(WireModel):
    group_id: str = Field(pattern=_ID)  # the MC group ID
    display_name: str | None = Field(default=None, max_length=256)
    members: list[str] = Field(default_factory=list, max_length=1000)


class Group(WireModel):
    group_id: str
    display_name: str | None = None
    owner: str
    members: list[str]
    created_at: datetime


class GroupList(WireModel):
    groups: list[Group]


@dataclass
class Groups:
    """The groups of one GM pool (shared by its instances)."""

    groups: dict[str, Group] = field(default_factory=dict)

    def visible(self, group_id: str, user: str) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            raise not_found(f"group {group_id!r}")
        if user != group.owner and user not in group.members:
            raise forbidden(f"{user} is neither owner nor member of {group_id}")
        return group

    def owned(self, group_id: str, user: str) -> Group:
        group = self.visible(group_id, user)
        if user != group.owner:
            raise forbidden(f"only the owner ({group.owner}) may change {group_id}")
        return group


def create(instance: str, groups: Groups, verify: Verify) -> Sample:
    """A GM instance serving ``groups``."""

    async def list_groups(request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        mine = [g for g in groups.groups.values() if user == g.owner or user in g.members]
        return respond(GroupList(groups=mine))

    async def create_group(request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        body = await parse_body(request, GroupCreate, 64 * 1024)
        if body.group_id in groups.groups:
            raise ProblemError(409, "GROUP_EXISTS", f"group {body.group_id!r} exists")
        members = list(dict.fromkeys([user, *body.members]))
        group = Group(
            group_id=body.group_id,
            display_name=body.display_name,
            owner=user,
            members=members,
            created_at=datetime.now(UTC),
        )
        groups.groups[group.group_id] = group
        return respond(group, 201, {"Location": f"{PREFIX}/groups/{group.group_id}"})

    async def get_group(request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        return respond(groups.visible(request.path_params["group_id"], user))

    async def delete_group(request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        group = groups.owned(request.path_params["group_id"], user)
        del groups.groups[group.group_id]
        return Response(status_code=204)

    async def add_member(request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        group = groups.owned(request.path_params["group_id"], user)
        member = request.path_params["member"]
        updated = group.model_copy(update={"members": list(dict.fromkeys([*group.members, member]))})
        groups.groups[group.group_id] = updated
        return respond(updated)

    async def remove_member(request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        member = request.path_params["member"]
        group = groups.visible(request.path_params["group_id"], user)
        if user not in (group.owner, member):
            raise forbidden(f"only the owner or {member} may remove {member}")
        if member not in group.members:
            raise ProblemError(404, Cause.CONTEXT_NOT_FOUND, f"{member} is not a member of {group.group_id}")
        updated = group.model_copy(update={"members": [m for m in group.members if m != member]})
        groups.groups[group.group_id] = updated
        return respond(updated)

    return build_sample(
        instance,
        [
            Route(f"{PREFIX}/groups", list_groups, methods=["GET"]),
            Route(f"{PREFIX}/groups", create_group, methods=["POST"]),
            Route(f"{PREFIX}/groups/{{group_id}}", get_group, methods=["GET"]),
            Route(f"{PREFIX}/groups/{{group_id}}", delete_group, methods=["DELETE"]),
            Route(f"{PREFIX}/groups/{{group_id}}/members/{{member}}", add_member, methods=["PUT"]),
            Route(f"{PREFIX}/groups/{{group_id}}/members/{{member}}", remove_member, methods=["DELETE"]),
        ],
        verify,
    )


SPEC = SampleSpec(
    name="gm",
    service_type="GM",
    reference_point="CSC-2",
    protocol="HTTP",
    api_prefix=PREFIX,
    resources=(
        Resource(
            resource_name="groups", comm_type="REQUEST_RESPONSE", uri="/groups", operations=["GET", "POST"]
        ),
        Resource(
            resource_name="group",
            comm_type="REQUEST_RESPONSE",
            uri="/groups/{groupId}",
            operations=["GET", "DELETE"],
        ),
        Resource(
            resource_name="member",
            comm_type="REQUEST_RESPONSE",
            uri="/groups/{groupId}/members/{mcServiceId}",
            operations=["PUT", "DELETE"],
        ),
    ),
    new_state=Groups,
    create=create,
)
