"""Trust boundary: external application (and the MC user behind it) -> service access server, and
external application -> registry (CSC-14).

What crosses it: an application's requests with an MC user's access token and a profile index
(seed 10.X.5), and the application's CSC-14 calls for its own profiles. The attacker is an
application that holds a valid profile of its own and tries to reach more than it was given: another
application's index, a user nobody granted to it, a resource or method outside its profile, a
priority above its maximum, a token minted for someone else. Every test asserts the refusal the
application sees and that the request reached no instance (a real recording server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from asgate.kernel.settings import Settings
from tests.access.system import ALICE, System, bearer, raw_request, running_system

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sas-system")]


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # the store is not what these tests are about


@pytest.fixture
async def system(make_settings: Callable[..., Settings]) -> AsyncIterator[System]:
    async with running_system(make_settings, sas_refusal_hold=0.0) as started:
        yield started


async def _recorder(system: System, app: str = "console-1") -> dict[str, Any]:
    """An authorized profile of ``app`` on the recording pool (GM/recorder)."""
    return await system.authorize("GM", app=app, serviceName="recorder")


def _refused(response: Any, status: int, cause: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["cause"] == cause


async def test_another_applications_profile_index_is_refused(system: System) -> None:
    mine = await _recorder(system, "console-1")
    theirs = await _recorder(system, "console-2")
    assert mine["appProfileIndex"] != theirs["appProfileIndex"]
    # console-1's MC user token, console-2's index: answered like an unknown index (no oracle).
    stolen = await system.http.get(
        f"{theirs['serviceLocationInformation']}/items", headers=bearer(system.user_token("console-1"))
    )
    unknown = await system.http.get(f"{system.sas}/999999/items", headers=bearer(system.user_token()))
    _refused(stolen, 403, "PROFILE_NOT_AUTHORIZED")
    _refused(unknown, 403, "PROFILE_NOT_AUTHORIZED")
    assert stolen.json()["detail"] == unknown.json()["detail"]
    assert system.recorder.requests == []


async def test_a_user_token_issued_to_another_application_is_refused(system: System) -> None:
    profile = await _recorder(system, "console-1")
    # alice signed in through console-2: that token speaks for console-2, not for console-1.
    via_other_app = system.user_token("console-2")
    response = await system.http.get(
        f"{profile['serviceLocationInformation']}/items", headers=bearer(via_other_app)
    )
    _refused(response, 403, "PROFILE_NOT_AUTHORIZED")
    assert system.recorder.requests == []


async def test_a_user_nobody_granted_to_the_application_is_refused(system: System) -> None:
    profile = await _recorder(system)
    response = await system.http.get(
        f"{profile['serviceLocationInformation']}/items",
        headers=bearer(system.user_token(user="bob@mc.example")),
    )
    _refused(response, 403, "USER_NOT_AUTHORIZED")
    assert system.recorder.requests == []


async def test_the_applications_own_token_is_no_mc_user(system: System) -> None:
    profile = await _recorder(system)
    # A client-credentials token of the application itself: no MC user behind it (R-5.18.2-004).
    response = await system.http.get(
        f"{profile['serviceLocationInformation']}/items", headers=bearer(system.app_token())
    )
    _refused(response, 403, "MC_USER_REQUIRED")
    assert system.recorder.requests == []


@pytest.mark.parametrize(
    ("method", "path", "cause"),
    [
        ("GET", "/admin", "RESOURCE_NOT_AUTHORIZED"),
        ("GET", "/items/1/secrets", "RESOURCE_NOT_AUTHORIZED"),
        ("DELETE", "/items/1", "OPERATION_NOT_AUTHORIZED"),
        ("PATCH", "/items", "OPERATION_NOT_AUTHORIZED"),
    ],
)
async def test_a_resource_or_method_outside_the_profile_is_refused(
    system: System, method: str, path: str, cause: str
) -> None:
    profile = await _recorder(system)
    response = await system.http.request(
        method, f"{profile['serviceLocationInformation']}{path}", headers=bearer(system.user_token())
    )
    _refused(response, 403, cause)
    assert system.recorder.requests == []


@pytest.mark.parametrize(
    ("value", "status", "cause"),
    [
        ("mcpttp.11", 403, "PRIORITY_NOT_AUTHORIZED"),  # the profile's maximum is mcpttp.10
        ("mcpttp.15", 403, "PRIORITY_NOT_AUTHORIZED"),
        ("mcpttp.16", 400, "INVALID_PRIORITY"),
        ("mcpttp.-1", 400, "INVALID_PRIORITY"),
        ("mcpttq.11", 403, "PRIORITY_NOT_AUTHORIZED"),
        ("mcpttq.16", 400, "INVALID_PRIORITY"),
        ("mcpttp.9, mcpttp.15", 400, "INVALID_PRIORITY"),  # one namespace twice: which would apply?
    ],
)
async def test_a_priority_above_the_profiles_maximum_is_refused(
    system: System, value: str, status: int, cause: str
) -> None:
    profile = await _recorder(system)
    response = await system.http.get(
        f"{profile['serviceLocationInformation']}/items",
        headers={**bearer(system.user_token()), "Resource-Priority": value},
    )
    _refused(response, status, cause)
    assert system.recorder.requests == []


async def test_an_expired_token_is_refused(system: System) -> None:
    profile = await _recorder(system)
    expired = system.user_token(exp=1_000_000_000)
    response = await system.http.get(
        f"{profile['serviceLocationInformation']}/items", headers=bearer(expired)
    )
    _refused(response, 401, "INVALID_TOKEN")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert system.recorder.requests == []


async def test_a_dot_segment_cannot_climb_out_of_the_profile(system: System) -> None:
    profile = await _recorder(system)
    base = profile["serviceLocationInformation"]
    index = profile["appProfileIndex"]
    token = system.user_token()
    target = f"/{index}/items/../../{index + 1}/items"
    status, _ = await raw_request(
        system.sas_port, f"GET {target} HTTP/1.1\r\nHost: sas\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    assert status == 400
    assert system.recorder.requests == []
    # The same resource spelled plainly goes through: the refusal was the traversal's.
    assert (await system.http.get(f"{base}/items", headers=bearer(system.user_token()))).status_code == 204


async def test_an_application_cannot_read_or_remove_another_applications_profile(system: System) -> None:
    theirs = await _recorder(system, "console-2")
    profile_url = f"{system.api}/mcx-registry/v1/app-profiles/{theirs['appProfileId']}"
    read = await system.http.get(profile_url, headers=bearer(system.app_token("console-1")))
    assert read.status_code in (403, 404), read.text
    assert read.headers["content-type"] == "application/problem+json"
    assert "serviceInterfaceDescription" not in read.text
    # REMOVE names the services, never another application: console-1 withdraws only its own.
    body = {
        "mcServiceId": ALICE,
        "requestType": "REMOVE",
        "servicesCapabilitiesInformation": [{"serviceType": "GM", "serviceName": "recorder"}],
    }
    removed = await system.http.post(
        f"{system.api}/mcx-registry/v1/authorizations",
        json=body,
        headers=bearer(system.app_token("console-1")),
    )
    assert removed.status_code in (200, 403, 404), removed.text
    still = await system.http.get(profile_url, headers=bearer(system.app_token("console-2")))
    assert still.status_code == 200 and still.json()["version"] == theirs["version"]
    through_sas = await system.http.get(
        f"{theirs['serviceLocationInformation']}/items", headers=bearer(system.user_token("console-2"))
    )
    assert through_sas.status_code == 204
