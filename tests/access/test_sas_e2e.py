"""Seed procedure 10.X.5 end to end on real sockets: an authorized external application reaches MC
services through the access server, which authenticates the MC user, checks profile and grant,
hides the topology, honours priority, fails over, and lets nothing unauthorized through."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import pytest
import websockets
from cryptography.hazmat.primitives import serialization

from asgate.kernel.settings import Settings
from tests.access.conftest import Raw
from tests.access.system import ALICE, System, bearer, running_system

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sas-system")]


HOLD = 0.5  # sas_refusal_hold in these tests


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # the store is not what these tests are about


@pytest.fixture
async def system(make_settings: Callable[..., Settings]) -> AsyncIterator[System]:
    async with running_system(make_settings, sas_header_timeout=1.0, sas_refusal_hold=HOLD) as started:
        yield started


async def test_10x5_an_authorized_application_reaches_the_service(system: System) -> None:
    profile = await system.authorize("GM", serviceName="sample-gm")
    base = profile["serviceLocationInformation"]
    assert base == f"{system.sas}/{profile['appProfileIndex']}"
    user = bearer(system.user_token())
    # Steps 1-5, and the MC user is the one the token says, whatever the client claims.
    created = await system.http.post(
        f"{base}/groups",
        json={"groupId": "fire-1"},
        headers={**user, "Asgate-MC-Service-Id": "mallory@mc.example"},
    )
    assert created.status_code == 201, created.text
    assert created.json()["owner"] == ALICE
    listed = await system.http.get(f"{base}/groups", headers=user)
    assert listed.status_code == 200 and [g["groupId"] for g in listed.json()["groups"]] == ["fire-1"]
    # Topology hidden: no backend address or server name in what comes back.
    for response in (created, listed):
        assert "server" not in response.headers and "via" not in response.headers
        assert "127.0.0.1:" not in json.dumps(dict(response.headers)).replace(str(system.sas_port), "")
        assert response.headers["x-sample-instance"] in ("gm-1", "gm-2")


async def test_head_is_allowed_wherever_get_is_and_answered_without_a_body(system: System) -> None:
    profile = await system.authorize("GM", serviceName="sample-gm")
    index, base = profile["appProfileIndex"], profile["serviceLocationInformation"]
    token = system.user_token()
    created = await system.http.post(f"{base}/groups", json={"groupId": "fire-1"}, headers=bearer(token))
    assert created.status_code == 201, created.text
    client = await Raw.open(system.sas_port)
    try:

        async def ask(method: str, path: str) -> tuple[int, dict[str, str], bytes]:
            auth = f"Host: sas\r\nAuthorization: Bearer {token}\r\n"
            await client.send(f"{method} /{index}{path} HTTP/1.1\r\n{auth}\r\n".encode())
            return await client.response(timeout=5, head_only=method == "HEAD")

        # RFC 9110 9.3.2: the GET's status and headers, Content-Length included, and no content;
        # the connection carries on, on both sides (the next response is not read as a body).
        get = await ask("GET", "/groups")
        head = await ask("HEAD", "/groups")
        assert (get[0], head[0]) == (200, 200) and head[2] == b""
        assert head[1]["content-length"] == get[1]["content-length"] == str(len(get[2]))
        assert head[1]["content-type"] == get[1]["content-type"] == "application/json"
        again = await ask("GET", "/groups/fire-1")
        assert again[0] == 200 and json.loads(again[2])["groupId"] == "fire-1"
        # Refused like the GET would be: a resource whose operations have no GET.
        refused = await ask("HEAD", "/groups/fire-1/members/bob@mc.example")
        assert refused[0] == 403 and refused[1]["content-type"] == "application/problem+json"
        assert int(refused[1]["content-length"]) > 0 and refused[2] == b""
        last = await ask("GET", "/groups")
        assert last[0] == 200 and last[2] == get[2]
    finally:
        await client.close()
    # Forwarded as HEAD, not turned into a GET.
    recorder = (await system.authorize("GM", serviceName="recorder"))["serviceLocationInformation"]
    answered = await system.http.head(f"{recorder}/items", headers=bearer(token))
    assert answered.status_code == 204
    assert [(r.method, r.path) for r in system.recorder.requests] == [("HEAD", "/rec/items")]


async def test_priority_is_checked_applied_and_indicated(system: System) -> None:
    base = (await system.authorize("GM", serviceName="sample-gm"))["serviceLocationInformation"]
    user = bearer(system.user_token())
    high = await system.http.get(f"{base}/groups", headers={**user, "Resource-Priority": "mcpttp.9"})
    assert high.status_code == 200 and high.headers["resource-priority"] == "mcpttp.9"
    assert high.headers["x-sample-resource-priority"] == "mcpttp.9"  # passed to the service
    queued = await system.http.get(f"{base}/groups", headers={**user, "Resource-Priority": "mcpttq.3"})
    assert queued.headers["resource-priority"] == "mcpttq.3"
    above = await system.http.get(f"{base}/groups", headers={**user, "Resource-Priority": "mcpttp.11"})
    assert (above.status_code, above.json()["cause"]) == (403, "PRIORITY_NOT_AUTHORIZED")
    bad = await system.http.get(f"{base}/groups", headers={**user, "Resource-Priority": "mcpttp.99"})
    assert (bad.status_code, bad.json()["cause"]) == (400, "INVALID_PRIORITY")
    plain = await system.http.get(f"{base}/groups", headers=user)
    assert "resource-priority" not in plain.headers


async def test_http2_streams_go_through_the_same_gate_priority_and_refusals(system: System) -> None:
    """h2c with prior knowledge (httpx, unchanged): the real gate decides every stream."""
    base = (await system.authorize("GM", serviceName="sample-gm"))["serviceLocationInformation"]
    user = bearer(system.user_token())
    transport = httpx.AsyncHTTPTransport(http1=False, http2=True)
    async with httpx.AsyncClient(transport=transport) as h2c:
        created = await h2c.post(f"{base}/groups", json={"groupId": "h2-1"}, headers=user)
        assert (created.status_code, created.http_version) == (201, "HTTP/2"), created.text
        assert created.json()["owner"] == ALICE
        high, above, anonymous = await asyncio.gather(
            h2c.get(f"{base}/groups", headers={**user, "Resource-Priority": "mcpttp.9"}),
            h2c.get(f"{base}/groups", headers={**user, "Resource-Priority": "mcpttp.11"}),
            h2c.get(f"{base}/groups"),
        )
    assert high.status_code == 200 and high.headers["resource-priority"] == "mcpttp.9"
    assert high.headers["x-sample-resource-priority"] == "mcpttp.9"
    assert (above.status_code, above.json()["cause"]) == (403, "PRIORITY_NOT_AUTHORIZED")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == "application/problem+json"
    assert "www-authenticate" in anonymous.headers


async def test_no_failed_idempotent_request_when_an_instance_dies(system: System) -> None:
    base = (await system.authorize("GM", serviceName="sample-gm"))["serviceLocationInformation"]
    user = bearer(system.user_token())
    results: list[tuple[int, str | None]] = []
    stop = time.monotonic() + 2.5

    async def client() -> None:
        while time.monotonic() < stop:
            response = await system.http.get(f"{base}/groups", headers=user)
            results.append((response.status_code, response.headers.get("x-sample-instance")))

    load = [asyncio.create_task(client()) for _ in range(8)]
    await asyncio.sleep(0.7)
    await system.samples.kill("gm-1")  # a crash: connections cut, no deregistration
    await asyncio.gather(*load)
    assert {status for status, _ in results} == {200}, [r for r in results if r[0] != 200][:5]
    served = [instance for _, instance in results]
    assert "gm-1" in served[: len(served) // 4] and served[-20:] == ["gm-2"] * 20


async def test_websocket_round_trip_with_priority(system: System) -> None:
    profile = await system.authorize("MCPTT")
    url = profile["serviceLocationInformation"].replace("http://", "ws://") + "/signalling"
    headers = {**bearer(system.user_token()), "Resource-Priority": "mcpttp.7"}
    async with websockets.connect(url, additional_headers=headers, subprotocols=["sip"]) as ws:  # type: ignore[list-item]
        invite = (
            "INVITE sip:group-1@mc.example SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
            "Resource-Priority: mcpttp.9\r\n\r\n"
        )
        await ws.send(invite)
        answer = str(await asyncio.wait_for(ws.recv(), 5))
    assert answer.startswith("SIP/2.0 200")
    assert "Resource-Priority: mcpttp.9" in answer and "X-Upgrade-Resource-Priority: mcpttp.7" in answer
    assert f"P-Asserted-Identity: <sip:{ALICE}>" in answer or ALICE in answer


async def test_a_profile_change_reaches_the_access_server(system: System) -> None:
    profile = await system.authorize("GM", serviceName="sample-gm")
    base, user = profile["serviceLocationInformation"], bearer(system.user_token())
    assert (await system.http.get(f"{base}/groups", headers=user)).status_code == 200
    ops = bearer(system.app_token("ops", "mcx-registry-admin"))
    edit = {
        "versions": [
            {
                "apiVersion": "v1",
                "resources": [
                    {
                        "resourceName": "group",
                        "uri": "/groups/{groupId}",
                        "commType": "REQUEST_RESPONSE",
                        "operations": ["GET"],
                    }
                ],
            }
        ]
    }
    edited = await system.http.put(
        f"{system.api}/mcx-registry-admin/v1/app-profiles/{profile['appProfileId']}", json=edit, headers=ops
    )
    assert edited.json()["version"] == 2
    started = time.monotonic()
    await system.until_routed(edited.json())
    assert time.monotonic() - started < 5
    refused = await system.http.get(f"{base}/groups", headers=user)
    assert (refused.status_code, refused.json()["cause"]) == (403, "RESOURCE_NOT_AUTHORIZED")


# ---------------------------------------------------------------- security probes


def _forged(system: System, header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{b64(signature)}"


def _claims(system: System, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": system.tokens.issuer,
        "aud": system.tokens.audience,
        "sub": "u",
        "client_id": "console-1",
        "azp": "console-1",
        "mcptt_id": ALICE,
        "scope": "openid",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return claims


def _signed(system: System, **overrides: Any) -> str:
    key = system.rt.keyring.active
    return jwt.encode(
        _claims(system, **overrides), key.private_key, algorithm="ES256", headers={"kid": key.kid}
    )


TOKEN_PROBES: dict[str, tuple[Callable[[System], str | None], int, str]] = {
    "missing": (lambda s: None, 401, "INVALID_TOKEN"),
    "expired": (lambda s: _signed(s, exp=int(time.time()) - 600), 401, "INVALID_TOKEN"),
    "not-yet-valid": (lambda s: _signed(s, nbf=int(time.time()) + 600), 401, "INVALID_TOKEN"),
    "wrong-issuer": (lambda s: _signed(s, iss="https://evil.example"), 401, "INVALID_TOKEN"),
    "wrong-audience": (lambda s: _signed(s, aud="other"), 401, "INVALID_TOKEN"),
    "alg-none": (
        lambda s: _forged(s, {"alg": "none", "kid": s.rt.keyring.active.kid}, _claims(s), b""),
        401,
        "INVALID_TOKEN",
    ),
    "hs256-public-key": (
        lambda s: _forged(
            s,
            {"alg": "HS256", "kid": s.rt.keyring.active.kid},
            _claims(s),
            s.rt.keyring.active.private_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
        401,
        "INVALID_TOKEN",
    ),
    "other-apps-index": (lambda s: s.user_token(app="console-2"), 403, "PROFILE_NOT_AUTHORIZED"),
    "user-not-granted": (lambda s: s.user_token(user="bob@mc.example"), 403, "USER_NOT_AUTHORIZED"),
    "application-token": (lambda s: s.app_token(), 403, "MC_USER_REQUIRED"),
}


@pytest.mark.parametrize("probe", list(TOKEN_PROBES))
async def test_token_probes_are_refused_and_reach_no_backend(system: System, probe: str) -> None:
    base = (await system.authorize("GM", serviceName="recorder"))["serviceLocationInformation"]
    ok = await system.http.get(f"{base}/items", headers=bearer(system.user_token()))
    assert ok.status_code == 204 and len(system.recorder.requests) == 1  # the recorder answers 204
    make, status, cause = TOKEN_PROBES[probe]
    token = make(system)
    response = await system.http.get(f"{base}/items", headers=bearer(token) if token else {})
    assert (response.status_code, response.json()["cause"]) == (status, cause)
    assert response.headers["content-type"] == "application/problem+json"
    assert len(system.recorder.requests) == 1  # nothing reached the backend
    if status == 401:
        assert response.headers["www-authenticate"].startswith('Bearer realm="asgate"')


RAW_PROBES = {
    "dot-dot": (b"GET /{i}/../admin HTTP/1.1\r\nHost: sas\r\nAuthorization: Bearer {t}\r\n\r\n", b"400"),
    "encoded-dot-dot": (
        b"GET /{i}/%2e%2e/items HTTP/1.1\r\nHost: sas\r\nAuthorization: Bearer {t}\r\n\r\n",
        b"400",
    ),
    "encoded-slash": (
        b"GET /{i}/items%2f..%2fadmin HTTP/1.1\r\nHost: sas\r\nAuthorization: Bearer {t}\r\n\r\n",
        b"400",
    ),
    "backslash": (
        b"GET /{i}/items\\..\\admin HTTP/1.1\r\nHost: sas\r\nAuthorization: Bearer {t}\r\n\r\n",
        b"400",
    ),
    "cl-te-smuggling": (
        b"POST /{i}/items HTTP/1.1\r\nHost: sas\r\nAuthorization: Bearer {t}\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /{i}/items HTTP/1.1\r\n\r\n",
        b"400",
    ),
    "oversized-headers": (
        b"GET /{i}/items HTTP/1.1\r\nHost: sas\r\nAuthorization: Bearer {t}\r\nX-Big: "
        + b"a" * 40000
        + b"\r\n\r\n",
        b"431",
    ),
}


@pytest.mark.parametrize("probe", list(RAW_PROBES))
async def test_raw_probes_are_refused_and_reach_no_backend(system: System, probe: str) -> None:
    index = (await system.authorize("GM", serviceName="recorder"))["appProfileIndex"]
    raw, status = RAW_PROBES[probe]
    request = raw.replace(b"{i}", str(index).encode()).replace(b"{t}", system.user_token().encode())
    reader, writer = await asyncio.open_connection("127.0.0.1", system.sas_port)
    writer.write(request)
    await writer.drain()
    head = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 " + status), head[:200]
    await asyncio.sleep(0.2)
    assert system.recorder.requests == []


async def test_healthz_is_answered_without_a_token_and_metrics_stay_off_the_data_plane(
    system: System,
) -> None:
    sas = system.sas
    health = await system.http.get(f"{sas}/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    head = await system.http.head(f"{sas}/healthz")
    assert head.status_code == 200 and head.content == b""
    # /metrics is served by the control plane only: on the data plane it is no profile index.
    metrics = await system.http.get(f"{sas}/metrics")
    assert metrics.status_code in (401, 403)
    assert metrics.headers["content-type"] == "application/problem+json"
    assert system.recorder.requests == []


async def test_slow_headers_are_cut_off(system: System) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", system.sas_port)
    writer.write(b"GET /1/items HTTP/1.1\r\nHost: sas\r\n")  # and never finish the head (slowloris)
    await writer.drain()
    started = time.monotonic()
    answer = await asyncio.wait_for(reader.read(4096), 5)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 3
    assert await asyncio.wait_for(reader.read(), 3) == b""  # and the connection is closed
    writer.close()
    assert system.recorder.requests == []


async def test_rate_limits_and_in_flight_caps_come_from_the_profile(system: System) -> None:
    ops = bearer(system.app_token("ops", "mcx-registry-admin"))
    spec = {
        "allowedServices": [{"serviceType": "GM"}],
        "maxPriority": "mcpttp.10",
        "rateLimits": {"perApplication": {"rate": 100, "burst": 100}, "perUser": {"rate": 0.5, "burst": 2}},
    }
    assert (
        await system.http.put(f"{system.api}/mcx-registry-admin/v1/apps/console-1", json=spec, headers=ops)
    ).status_code == 200
    base = (await system.authorize("GM", serviceName="recorder"))["serviceLocationInformation"]
    user = bearer(system.user_token())
    statuses = [(await system.http.get(f"{base}/items", headers=user)).status_code for _ in range(4)]
    assert statuses == [204, 204, 429, 429]
    limited = await system.http.get(f"{base}/items", headers=user)
    assert limited.json()["cause"] == "RATE_LIMITED" and int(limited.headers["retry-after"]) >= 1
    assert len(system.recorder.requests) == 2


async def test_a_client_that_ignores_retry_after_is_held_while_others_are_served(system: System) -> None:
    ops = bearer(system.app_token("ops", "mcx-registry-admin"))
    spec = {
        "allowedServices": [{"serviceType": "GM"}],
        "maxPriority": "mcpttp.10",
        "rateLimits": {"perApplication": {"rate": 0.1, "burst": 1}},
    }
    assert (
        await system.http.put(f"{system.api}/mcx-registry-admin/v1/apps/console-1", json=spec, headers=ops)
    ).status_code == 200
    index = (await system.authorize("GM", serviceName="recorder"))["appProfileIndex"]
    other = (await system.authorize("GM", app="console-2", serviceName="recorder"))["appProfileIndex"]

    def get(i: int, app: str) -> bytes:
        token = system.user_token(app=app)
        return f"GET /{i}/items HTTP/1.1\r\nHost: sas\r\nAuthorization: Bearer {token}\r\n\r\n".encode()

    async def exchange(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, request: bytes) -> bytes:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]) if b"ength:" in head else 0
        await reader.readexactly(length)
        return head[9:12]

    reader, writer = await asyncio.open_connection("127.0.0.1", system.sas_port)
    other_reader, other_writer = await asyncio.open_connection("127.0.0.1", system.sas_port)
    try:
        assert await exchange(writer, reader, get(index, "console-1")) == b"204"  # the burst
        assert await exchange(writer, reader, get(index, "console-1")) == b"429"  # told to come back later
        refused = time.monotonic()
        again = asyncio.create_task(exchange(writer, reader, get(index, "console-1")))  # does not wait
        assert await exchange(other_writer, other_reader, get(other, "console-2")) == b"204"
        # Others are served meanwhile; the held connection is read only after the (jittered: 0.5 to
        # 1.5 x) hold.
        assert time.monotonic() - refused < HOLD * 0.4 and not again.done()
        assert await again == b"429" and time.monotonic() - refused >= HOLD * 0.45
    finally:
        for w in (writer, other_writer):
            w.close()
            await w.wait_closed()
    assert len(system.recorder.requests) == 2


async def test_requests_are_measured_per_application_service_status_and_priority(system: System) -> None:
    base = (await system.authorize("GM", serviceName="sample-gm"))["serviceLocationInformation"]
    user = bearer(system.user_token())
    for _ in range(3):
        await system.http.get(f"{base}/groups", headers={**user, "Resource-Priority": "mcpttp.9"})
    await system.http.get(f"{base}/nothing", headers=user)
    metrics = await system.http.get(
        f"{system.api}/metrics", headers=bearer(system.app_token("prom", "asgate-metrics"))
    )
    text = metrics.text
    assert (
        'asgate_sas_requests_total{application="console-1",priority="mcpttp.9",'
        'service="GM/sample-gm",status="200"} 3.0' in text
    )
    assert 'asgate_sas_connections_total{outcome="403 RESOURCE_NOT_AUTHORIZED"} 1.0' in text
