"""msgs-asregistration/v1 through the in-process app; every response checked against TS 29.538's YAML."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp

from asgate.kernel.settings import Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests import contract
from tests.conftest import Provision, TokenFor, bearer, official_3gpp

BASE = "/msgs-asregistration/v1/registrations"


@pytest.fixture
def spec() -> Path:
    return official_3gpp("TS29538_MSGS_ASRegistration.yaml")


@pytest.fixture
async def token(provision: Provision, token_for: TokenFor) -> str:
    await provision("as-1", as_svc_ids=("AS1", "AS1b"))
    return await token_for("as-1")


async def post(http: httpx.AsyncClient, token: str, body: Any, spec: Path, **headers: str) -> httpx.Response:
    response = await http.post(BASE, json=body, headers={**bearer(token), **headers})
    contract.check(spec, response)
    return response


async def test_registration_answers_201_with_the_ack_and_an_absolute_location(
    http: httpx.AsyncClient, token: str, spec: Path, rt: Runtime
) -> None:
    body = {
        "asSvcId": "AS1",
        "appId": "fleet-tracker",
        "targetUri": "https://as1.example.com/msgin5g",
        "asProf": {
            "appName": "Fleet tracker",
            "appProviders": ["ACME"],
            "appSenarios": ["V2X", "metering"],
            "appCategory": "transport",
            "asStatus": "active",
        },
    }
    response = await post(http, token, body, spec)
    assert response.status_code == 201
    assert response.json() == {"asSvcId": "AS1", "result": {"status": 201, "title": "Created"}}
    location = response.headers["location"]
    assert location.startswith("http://testserver/msgs-asregistration/v1/registrations/")
    registration_id = location.rsplit("/", 1)[1]
    stored = await rt.store.registrations.get(registration_id)
    assert stored is not None and stored.client_id == "as-1"
    assert (
        stored.as_prof is not None and stored.as_prof.dump() == body["asProf"]
    )  # appSenarios kept as spelled
    assert stored.target_uri == body["targetUri"] and stored.app_id == "fleet-tracker"


async def test_location_uses_the_configured_api_root(
    make_settings: Callable[..., Settings], spec: Path
) -> None:
    settings = make_settings(api_root="https://msgs.operator.example/")
    async with Runtime.open(settings) as rt, control_app(rt) as app:
        await _provision_direct(rt)
        async with _client(app) as http:
            token = await _token(http)
            response = await post(http, token, {"asSvcId": "AS1"}, spec)
    assert response.headers["location"].startswith(
        "https://msgs.operator.example/msgs-asregistration/v1/registrations/"
    )


async def test_deregistration_answers_200_with_the_ack_and_deletes_the_profile(
    http: httpx.AsyncClient, token: str, spec: Path, rt: Runtime
) -> None:
    location = (await post(http, token, {"asSvcId": "AS1", "asProf": {"appName": "x"}}, spec)).headers[
        "location"
    ]
    response = await http.delete(location, headers=bearer(token))
    contract.check(spec, response)
    assert response.status_code == 200
    assert response.json() == {"asSvcId": "AS1", "result": {"status": 200, "title": "OK"}}
    assert await rt.store.registrations.count() == 0
    again = await http.delete(location, headers=bearer(token))
    contract.check(spec, again)
    assert again.status_code == 404 and again.json()["cause"] == "CONTEXT_NOT_FOUND"


async def test_deregistration_can_answer_204(make_settings: Callable[..., Settings], spec: Path) -> None:
    async with Runtime.open(make_settings(msgs_delete_status=204)) as rt, control_app(rt) as app:
        await _provision_direct(rt)
        async with _client(app) as http:
            token = await _token(http)
            location = (await post(http, token, {"asSvcId": "AS1"}, spec)).headers["location"]
            response = await http.delete(location, headers=bearer(token))
            contract.check(spec, response)
    assert response.status_code == 204 and response.content == b""


async def test_a_restarted_as_registering_again_replaces_its_registration(
    http: httpx.AsyncClient, token: str, spec: Path, rt: Runtime
) -> None:
    old = (await post(http, token, {"asSvcId": "AS1", "asProf": {"asStatus": "v1"}}, spec)).headers[
        "location"
    ]
    new = (await post(http, token, {"asSvcId": "AS1", "asProf": {"asStatus": "v2"}}, spec)).headers[
        "location"
    ]
    assert old != new
    (only,) = await rt.store.registrations.scan()
    assert (
        only.registration_id == new.rsplit("/", 1)[1]
        and only.as_prof is not None
        and only.as_prof.as_status == "v2"
    )
    # The stale instance's de-registration cannot remove the new registration.
    stale = await http.delete(old, headers=bearer(token))
    assert stale.status_code == 404
    assert await rt.store.registrations.count() == 1


async def test_rel17_clients_are_served(http: httpx.AsyncClient, token: str) -> None:
    rel17 = official_3gpp("rel-17/TS29538_MSGS_ASRegistration.yaml")
    response = await http.post(BASE, json={"asSvcId": "AS1", "appId": "legacy-app"}, headers=bearer(token))
    contract.check(rel17, response)
    assert response.status_code == 201
    deleted = await http.delete(response.headers["location"], headers=bearer(token))
    contract.check(rel17, deleted)
    assert deleted.status_code == 200  # Rel-17 knows no 204


async def test_an_as_svc_id_longer_than_any_provisioned_is_refused_not_crashed(
    http: httpx.AsyncClient, token: str, spec: Path
) -> None:
    response = await post(http, token, {"asSvcId": "A" * 5000, "appId": "x" * 5000}, spec)
    assert (response.status_code, response.json()["cause"]) == (403, "AS_SVC_ID_NOT_ALLOWED")


async def test_unknown_attributes_are_ignored(
    http: httpx.AsyncClient, token: str, spec: Path, rt: Runtime
) -> None:
    response = await post(
        http, token, {"asSvcId": "AS1", "futureIe": {"x": 1}, "asProf": {"newField": True}}, spec
    )
    assert response.status_code == 201
    (stored,) = await rt.store.registrations.scan()
    assert stored.as_prof is not None and stored.as_prof.dump() == {}


@pytest.mark.parametrize(
    ("body", "cause", "params"),
    [
        ({}, "MANDATORY_IE_MISSING", ["/asSvcId"]),
        ({"appId": "x"}, "MANDATORY_IE_MISSING", ["/asSvcId"]),
        ({"asSvcId": 7}, "MANDATORY_IE_INCORRECT", ["/asSvcId"]),
        ({"asSvcId": "AS1", "appId": ["x"]}, "OPTIONAL_IE_INCORRECT", ["/appId"]),
        (
            {"asSvcId": "AS1", "asProf": {"appProviders": []}},
            "OPTIONAL_IE_INCORRECT",
            ["/asProf/appProviders"],
        ),
        (
            {"asSvcId": "AS1", "asProf": {"appSenarios": ["ok", 3]}},
            "OPTIONAL_IE_INCORRECT",
            ["/asProf/appSenarios/1"],
        ),
        ({"asSvcId": "AS1", "targetUri": None}, "OPTIONAL_IE_INCORRECT", ["/targetUri"]),
        ({"asSvcId": "AS1", "asProf": {"appName": None}}, "OPTIONAL_IE_INCORRECT", ["/asProf/appName"]),
        ({"asSvcId": None}, "MANDATORY_IE_INCORRECT", ["/asSvcId"]),
        (["asSvcId"], "INVALID_MSG_FORMAT", []),
    ],
    ids=[
        "empty",
        "no-as-svc-id",
        "wrong-type",
        "optional-wrong-type",
        "empty-providers",
        "bad-item",
        "null-optional",
        "null-nested",
        "null-mandatory",
        "array",
    ],
)
async def test_schema_violations_are_400_with_json_pointers(
    http: httpx.AsyncClient, token: str, spec: Path, rt: Runtime, body: Any, cause: str, params: list[str]
) -> None:
    response = await post(http, token, body, spec)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["cause"] == cause
    assert [p["param"] for p in problem.get("invalidParams", [])] == params
    assert await rt.store.registrations.count() == 0


@pytest.mark.parametrize(
    ("content", "headers", "status", "cause"),
    [
        (b"{not json", {"content-type": "application/json"}, 400, "INVALID_MSG_FORMAT"),
        (b'{"asSvcId":"AS1"}', {"content-type": "text/plain"}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (b'{"asSvcId":"AS1"}', {}, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (
            b'{"asSvcId":"' + b"x" * 2000 + b'"}',
            {"content-type": "application/json"},
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ],
    ids=["bad-json", "text-plain", "no-content-type", "too-large"],
)
async def test_bad_bodies_get_problem_details(
    make_settings: Callable[..., Settings],
    spec: Path,
    content: bytes,
    headers: dict[str, str],
    status: int,
    cause: str,
) -> None:
    async with Runtime.open(make_settings(max_body_bytes=1024)) as rt, control_app(rt) as app:
        await _provision_direct(rt)
        async with _client(app) as http:
            token = await _token(http)
            response = await http.post(BASE, content=content, headers={**headers, **bearer(token)})
            contract.check(spec, response)
            assert (response.status_code, response.json()["cause"]) == (status, cause)
            assert await rt.store.registrations.count() == 0


async def test_a_body_without_length_gets_411(http: httpx.AsyncClient, token: str, spec: Path) -> None:
    async def stream() -> Any:
        yield b'{"asSvcId":"AS1"}'

    request = http.build_request(
        "POST", BASE, content=stream(), headers={"content-type": "application/json", **bearer(token)}
    )
    del request.headers["transfer-encoding"]
    response = await http.send(request)
    contract.check(spec, response)
    assert (response.status_code, response.json()["cause"]) == (411, "INCORRECT_LENGTH")


async def test_a_chunked_body_is_accepted(http: httpx.AsyncClient, token: str, spec: Path) -> None:
    async def stream() -> Any:
        yield b'{"asSvcId":'
        yield b'"AS1"}'

    response = await http.post(
        BASE, content=stream(), headers={"content-type": "application/json", **bearer(token)}
    )
    contract.check(spec, response)
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("target_uri", "accepted"),
    [
        ("https://as1.example.com/cb", True),
        ("http://127.0.0.1:9200/cb", True),
        ("http://169.254.169.254/latest/meta-data", False),
        ("ftp://as1.example.com/cb", False),
        ("https://user:pw@as1.example.com/cb", False),
        ("not a uri", False),
    ],
)
async def test_target_uri_is_checked_by_the_outbound_policy(
    http: httpx.AsyncClient, token: str, spec: Path, target_uri: str, accepted: bool
) -> None:
    response = await post(http, token, {"asSvcId": "AS1", "targetUri": target_uri}, spec)
    if accepted:
        assert response.status_code == 201
    else:
        assert response.status_code == 400
        assert response.json()["cause"] == "URI_NOT_ALLOWED"
        assert response.json()["invalidParams"][0]["param"] == "/targetUri"


async def test_unknown_paths_and_methods_get_problem_details(http: httpx.AsyncClient, token: str) -> None:
    missing = await http.get("/msgs-asregistration/v1/nothing", headers=bearer(token))
    assert (missing.status_code, missing.json()["cause"]) == (404, "RESOURCE_URI_STRUCTURE_NOT_FOUND")
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = await http.get(BASE, headers=bearer(token))
    assert (wrong.status_code, wrong.json()["cause"]) == (405, "METHOD_NOT_ALLOWED")
    assert wrong.headers["allow"] == "POST"


async def test_an_unexpected_failure_is_a_generic_500_that_leaks_nothing(
    http: httpx.AsyncClient, token: str, spec: Path, rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*_a: object) -> None:
        raise RuntimeError("password=hunter2 at /srv/db")

    monkeypatch.setattr(rt.store, "write_many", broken)
    response = await post(http, token, {"asSvcId": "AS1"}, spec)
    assert response.status_code == 500
    assert response.json()["cause"] == "SYSTEM_FAILURE"
    assert "hunter2" not in response.text and "/srv" not in response.text
    assert response.headers["x-request-id"]


async def test_request_ids_are_echoed(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz", headers={"x-request-id": "trace-42"})
    assert response.headers["x-request-id"] == "trace-42"
    generated = await http.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert (
        generated.headers["x-request-id"] != "bad id with spaces"
        and len(generated.headers["x-request-id"]) == 32
    )


# ---------------------------------------------------------------- helpers for tests with own settings


async def _provision_direct(rt: Runtime) -> None:
    from datetime import UTC, datetime

    from asgate.domain.idm import Client
    from asgate.idm.passwords import hash_secret

    now = datetime.now(UTC)
    await rt.store.write(
        lambda tx: tx.clients.add(
            Client(
                client_id="as-1",
                secret_hash=hash_secret("as-1-secret"),
                scopes=("msgs-asregistration",),
                as_svc_ids=("AS1",),
                created_at=now,
                updated_at=now,
            )
        )
    )


def _client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def _token(http: httpx.AsyncClient) -> str:
    response = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("as-1", "as-1-secret")
    )
    return str(response.json()["access_token"])
