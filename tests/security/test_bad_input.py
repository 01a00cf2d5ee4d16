"""Boundary: any client -> every API (parsing, before anything reaches a service or the store).

U+0000 anywhere in a string (JSON body at any depth, path, query, header) is a 400 ProblemDetails
with a cause on every API and both backends (PostgreSQL text refuses NUL: it used to be a 500);
integer path parameters out of range are 404; what the OpenAPI documents call a date-time is one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from asgate.kernel.settings import Settings
from asgate.system.runtime import Runtime
from tests.conftest import Provision, bearer
from tests.registry.conftest import gm_registration

ALICE = "alice@mc.example"
SCOPES = (
    "msgs-asregistration",
    "msgs-admin",
    "mcx-service-registration",
    "mcx-registry",
    "mcx-registry-admin",
    "mcx-access-profiles",
)
NUL = "a\u0000b"

# (method, path, JSON body or None): one request per API and way in, each with a NUL somewhere.
BODIES: list[tuple[str, str, Any]] = [
    ("POST", "/msgs-asregistration/v1/registrations", {"asSvcId": NUL}),
    ("POST", "/msgs-asregistration/v1/registrations", {"asSvcId": "AS1", "asProf": {"msgsAsName": [NUL]}}),
    ("POST", "/mcx-service-registration/v1/services", gm_registration(name=NUL)),
    ("POST", "/mcx-service-registration/v1/services", gm_registration(environment={"region": NUL})),
    ("POST", "/mcx-service-registration/v1/services", gm_registration(environment={NUL: "north"})),
    (
        "POST",
        "/mcx-registry/v1/authorizations",
        {
            "mcServiceId": NUL,
            "requestType": "AUTHORIZE",
            "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
        },
    ),
    (
        "PUT",
        "/mcx-registry-admin/v1/apps/probe",
        {"allowedServices": [{"serviceType": "GM", "serviceName": NUL}]},
    ),
    ("PUT", "/mcx-registry-admin/v1/grants/probe/alice", {"services": [NUL]}),
    (
        "POST",
        "/mcx-access-profiles/v1/changes",
        {
            "previousSequence": 0,
            "changes": [{"sequence": 1, "kind": "app-profile", "key": NUL, "op": "DELETE"}],
        },
    ),
]

PATHS = [
    ("DELETE", "/msgs-asregistration/v1/registrations/a%00b"),
    ("GET", "/msgs-admin/v1/registrations/a%00b"),
    ("GET", "/mcx-service-registration/v1/services/a%00b"),
    ("PUT", "/mcx-service-registration/v1/services/a%00b/heartbeat"),
    ("GET", "/mcx-registry/v1/app-profiles/a%00b"),
    ("GET", "/mcx-registry-admin/v1/apps/a%00b"),
    ("DELETE", "/mcx-registry-admin/v1/grants/probe/a%00b"),
    ("GET", "/mcx-registry-admin/v1/app-profiles/a%00b"),
    ("DELETE", "/mcx-registry-admin/v1/services/a%00b"),
    ("DELETE", "/mcx-access-profiles/v1/app-profiles/a%00b"),
]

QUERIES = [
    ("GET", "/mcx-registry/v1/service-information?mc-service-id=a%00b"),
    ("GET", "/mcx-registry/v1/service-information?mc-service-id=alice&service-type=%00"),
    ("GET", "/mcx-registry-admin/v1/audit?actor=a%00b"),
    ("GET", "/mcx-registry-admin/v1/outbox?state=%00"),
    ("GET", "/msgs-admin/v1/registrations?as-svc-id=%00"),
    ("GET", "/mcx-registry-sync/v1/snapshot?x%00=1"),
    ("GET", "/oauth2/authorize?client_id=a%00b&response_type=code"),
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # The probe speaks for every client kind, the registry's CSC-15 pusher included (issue 8 item 6).
    return make_settings(sas_csc15_clients=["asgate-registry", "probe"])


@pytest.fixture
async def token(provision: Provision, mint: Any) -> str:
    await provision("probe", SCOPES, as_svc_ids=("AS1",), service_pools=("*/*",))
    return str(mint("probe", *SCOPES))


def assert_nul_refused(response: httpx.Response, causes: tuple[str, ...]) -> None:
    assert response.status_code == 400, (response.request.url, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["cause"] in causes, problem
    assert "\\x00" not in response.text and "\\u0000" not in response.text  # no echo of the input


async def nothing_stored(rt: Runtime) -> None:
    assert await rt.store.registry.apps() == []
    assert await rt.store.registry.deliveries() == []
    assert [i for i in await rt.store.registry.instances()] == []


@pytest.mark.parametrize(("method", "path", "body"), BODIES, ids=[f"{m} {p}" for m, p, _ in BODIES])
async def test_nul_in_a_json_body_is_400(
    http: httpx.AsyncClient, token: str, rt: Runtime, method: str, path: str, body: Any
) -> None:
    response = await http.request(method, path, json=body, headers=bearer(token))
    # Where the schema already refuses the string (a pattern, an enum), its own cause answers.
    assert_nul_refused(response, ("INVALID_MSG_FORMAT", "MANDATORY_IE_INCORRECT", "OPTIONAL_IE_INCORRECT"))
    assert response.json()["invalidParams"][0]["param"].startswith("/")
    await nothing_stored(rt)


@pytest.mark.parametrize(("method", "path"), PATHS, ids=[f"{m} {p}" for m, p in PATHS])
async def test_nul_in_the_path_is_400(
    http: httpx.AsyncClient, token: str, rt: Runtime, method: str, path: str
) -> None:
    response = await http.request(method, path, headers=bearer(token))
    assert_nul_refused(response, ("INVALID_MSG_FORMAT",))
    await nothing_stored(rt)


@pytest.mark.parametrize(("method", "path"), QUERIES, ids=[f"{m} {p}" for m, p in QUERIES])
async def test_nul_in_the_query_is_400(http: httpx.AsyncClient, token: str, method: str, path: str) -> None:
    response = await http.request(method, path, headers=bearer(token))
    assert_nul_refused(response, ("INVALID_QUERY_PARAM",))


async def test_nul_in_a_token_request_is_an_oauth_error(
    http: httpx.AsyncClient, provision: Provision
) -> None:
    await provision("probe", SCOPES)
    form = {"grant_type": "client_credentials", "client_id": NUL, "client_secret": "x"}
    response = await http.post("/oauth2/token", data=form)
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("invalid_request", "invalid_client")
    basic = await http.post("/oauth2/token", data={"grant_type": "client_credentials"}, auth=(NUL, "x"))
    assert basic.status_code in (400, 401)
    assert basic.json()["error"] in ("invalid_request", "invalid_client")


async def test_nul_in_a_sign_in_form_is_refused_without_an_error(http: httpx.AsyncClient) -> None:
    form = {"handle": "h", "username": NUL, "password": "x"}
    response = await http.post("/oauth2/authorize", data=form, headers={"sec-fetch-site": "same-origin"})
    assert response.status_code == 400
    assert "U+0000" in response.text


async def test_nul_in_a_header_value_is_400(app: Any, token: str) -> None:
    # httpx refuses to send a NUL in a header: call the app with the ASGI scope a server would give.
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http", "method": "GET", "path": "/mcx-registry/v1/service-information", "raw_path": b"",
        "query_string": b"mc-service-id=alice", "root_path": "", "scheme": "http", "server": ("t", 80),
        "headers": [(b"host", b"t"), (b"authorization", f"Bearer {token}".encode()), (b"x-probe", b"a\x00b")],
        "http_version": "1.1", "asgi": {"version": "3.0"},
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    assert sent[0]["status"] == 400
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert (body["cause"], body["invalidParams"][0]["param"]) == ("INVALID_MSG_FORMAT", "header x-probe")


OUT_OF_RANGE = [
    ("POST", "/mcx-registry-admin/v1/outbox/99999999999999999999/retry"),
    ("POST", "/mcx-registry-admin/v1/outbox/9223372036854775808/retry"),
    ("POST", "/mcx-registry-admin/v1/outbox/-1/retry"),
    ("GET", "/mcx-registry-admin/v1/app-profiles/99999999999999999999"),
    ("GET", "/mcx-registry-admin/v1/app-profiles/-1"),
    ("DELETE", "/mcx-registry-admin/v1/app-profiles/99999999999999999999"),
    ("GET", "/mcx-registry/v1/app-profiles/99999999999999999999"),
    ("GET", "/msgs-admin/v1/registrations/99999999999999999999"),
    ("DELETE", "/msgs-asregistration/v1/registrations/99999999999999999999"),
    ("GET", "/mcx-service-registration/v1/services/99999999999999999999"),
]


@pytest.mark.parametrize(("method", "path"), OUT_OF_RANGE, ids=[f"{m} {p}" for m, p in OUT_OF_RANGE])
async def test_an_id_out_of_range_is_404(http: httpx.AsyncClient, token: str, method: str, path: str) -> None:
    response = await http.request(method, path, headers=bearer(token))
    assert response.status_code == 404, response.text
    assert response.json()["cause"] in ("CONTEXT_NOT_FOUND", "RESOURCE_URI_STRUCTURE_NOT_FOUND")


@pytest.mark.parametrize("value", ["99999999999999999999", "-1", "²", "٣", "1e3"])
async def test_an_integer_query_parameter_out_of_range_is_400(
    http: httpx.AsyncClient, token: str, value: str
) -> None:
    response = await http.get("/mcx-registry-admin/v1/outbox", params={"after": value}, headers=bearer(token))
    assert response.status_code == 400
    assert response.json()["cause"] == "INVALID_QUERY_PARAM"


@pytest.mark.parametrize(
    "expiry", [1893456000, 1893456000.5, "1893456000", "2030-01-01T00:00:00", "tomorrow"]
)
async def test_versions_expiry_is_a_date_time_not_a_number(
    http: httpx.AsyncClient, token: str, rt: Runtime, expiry: Any
) -> None:
    body = gm_registration()
    body["versions"][0]["expiry"] = expiry
    response = await http.post("/mcx-service-registration/v1/services", json=body, headers=bearer(token))
    assert response.status_code == 400, response.text
    assert response.json()["invalidParams"][0]["param"] == "/versions/0/expiry"
    assert await rt.store.registry.instances() == []


async def test_versions_expiry_as_a_date_time_is_kept(http: httpx.AsyncClient, token: str) -> None:
    body = gm_registration()
    body["versions"][0]["expiry"] = "2030-01-01T00:00:00+01:00"
    response = await http.post("/mcx-service-registration/v1/services", json=body, headers=bearer(token))
    assert response.status_code == 201, response.text
    assert response.json()["versions"][0]["expiry"] == "2030-01-01T00:00:00+01:00"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "1" + "0" * 400])
async def test_numbers_json_cannot_hold_are_400(
    http: httpx.AsyncClient, token: str, rt: Runtime, number: str
) -> None:
    raw = '{"rateLimits": {"perApplication": {"rate": %s, "burst": %s}}}' % (number, number)  # noqa: UP031
    response = await http.put(
        "/mcx-registry-admin/v1/apps/probe",
        content=raw.replace('"rateLimits"', '"allowedServices": [{"serviceType": "GM"}], "rateLimits"'),
        headers={**bearer(token), "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["cause"] in ("INVALID_MSG_FORMAT", "OPTIONAL_IE_INCORRECT")
    assert await rt.store.registry.apps() == []


LONG = "x" * 300
OVERLONG = [
    ("PUT", f"/mcx-registry-admin/v1/apps/{LONG}", {"allowedServices": [{"serviceType": "GM"}]}),
    ("PUT", f"/mcx-registry-admin/v1/grants/probe/{LONG}", {}),
    ("PUT", f"/mcx-registry-admin/v1/grants/{LONG}/alice", {}),
    ("POST", "/msgs-asregistration/v1/registrations", {"asSvcId": LONG}),
    ("POST", "/mcx-service-registration/v1/services", gm_registration(name=LONG)),
    (
        "POST",
        "/mcx-registry/v1/authorizations",
        {
            "mcServiceId": LONG,
            "requestType": "AUTHORIZE",
            "servicesCapabilitiesInformation": [{"serviceType": "GM"}],
        },
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), OVERLONG, ids=[f"{m} {p[:60]}" for m, p, _ in OVERLONG])
async def test_an_overlong_string_is_refused_before_the_store(
    http: httpx.AsyncClient, token: str, rt: Runtime, method: str, path: str, body: Any
) -> None:
    await http.put(
        "/mcx-registry-admin/v1/apps/probe",
        json={"allowedServices": [{"serviceType": "GM"}]},
        headers=bearer(token),
    )
    response = await http.request(method, path, json=body, headers=bearer(token))
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["cause"]
    assert [a.client_id for a in await rt.store.registry.apps()] == ["probe"]


@pytest.mark.parametrize("value", ["²", "³", "1¹"])
async def test_a_non_ascii_digit_in_a_numeric_header_is_400(
    http: httpx.AsyncClient, token: str, value: str
) -> None:
    # A header is read as Latin-1: str.isdigit() holds for "²" (byte 0xB2), which int() refuses (a 500).
    headers = {**bearer(token), "Asgate-Sequence": value, "Asgate-Previous-Sequence": "0"}
    response = await http.request(
        "DELETE",
        "/mcx-access-profiles/v1/app-profiles/p1",
        headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
    )
    assert response.status_code == 400, response.text
    assert response.json()["invalidParams"][0]["param"] == "header asgate-sequence"
