"""Browser applications through the access server (CORS, Fetch Standard), on real sockets: the
access server answers preflights itself for the application's allowed origins, and every answer to
such an origin (the service's, and the access server's own refusals) carries the CORS headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets
from websockets.typing import Origin, Subprotocol

from asgate.kernel.settings import Settings
from tests.access.system import System, bearer, running_system

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sas-system")]

CONSOLE = "https://console.example"
SPEC = {"allowedServices": [{"serviceType": "GM"}, {"serviceType": "MCPTT"}], "maxPriority": "mcpttp.10"}


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # the store is not what these tests are about


@pytest.fixture
async def system(make_settings: Callable[..., Settings]) -> AsyncIterator[System]:
    async with running_system(make_settings, sas_refusal_hold=0.0) as started:
        yield started


async def allow_origins(system: System, app: str, *origins: str) -> None:
    """The administrator allows ``origins`` for ``app`` (admin API, as ``asgate apps update``)."""
    ops = bearer(system.app_token("ops", "mcx-registry-admin"))
    spec = {**SPEC, "allowedOrigins": list(origins)}
    response = await system.http.put(f"{system.api}/mcx-registry-admin/v1/apps/{app}", json=spec, headers=ops)
    assert response.status_code == 200, response.text
    assert response.json()["allowedOrigins"] == [o.lower() for o in origins]


async def recorder_profile(system: System, *origins: str) -> dict[str, Any]:
    await allow_origins(system, "console-1", *origins)
    profile = await system.authorize("GM", serviceName="recorder")
    assert profile["serviceInterfaceDescription"]["allowedOrigins"] == list(origins)
    return profile


def assert_cors(response: Any, origin: str = CONSOLE) -> None:
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "Origin" in response.headers["vary"]
    exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"retry-after", "location", "www-authenticate"} <= exposed


async def test_a_preflight_is_answered_by_the_access_server_alone(system: System) -> None:
    base = (await recorder_profile(system, CONSOLE))["serviceLocationInformation"]
    preflight = await system.http.options(
        f"{base}/items",
        headers={
            "Origin": CONSOLE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,resource-priority,x-made-up",
        },
    )
    assert preflight.status_code == 204 and preflight.content == b""
    assert preflight.headers["access-control-allow-origin"] == CONSOLE
    assert preflight.headers["access-control-allow-credentials"] == "true"
    assert preflight.headers["access-control-allow-methods"] == "POST"
    assert (
        preflight.headers["access-control-allow-headers"] == "authorization, content-type, resource-priority"
    )
    assert int(preflight.headers["access-control-max-age"]) > 0
    assert "content-length" not in preflight.headers  # RFC 9110 8.6: never on a 204
    assert system.recorder.requests == []  # no token needed, nothing reached an instance


async def test_over_http2_the_preflight_and_the_refusals_are_the_same(system: System) -> None:
    """A browser speaking HTTP/2 (h2c here, ALPN h2 in production) gets the same CORS answers."""
    base = (await recorder_profile(system, CONSOLE))["serviceLocationInformation"]
    ask = {
        "Origin": CONSOLE,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with httpx.AsyncClient(http1=False, http2=True) as h2:
        preflight = await h2.options(f"{base}/items", headers=ask)
        no_token = await h2.get(f"{base}/items", headers={"Origin": CONSOLE})
        served = await h2.get(f"{base}/items", headers={"Origin": CONSOLE, **bearer(system.user_token())})
    assert {r.http_version for r in (preflight, no_token, served)} == {"HTTP/2"}
    assert preflight.status_code == 204 and preflight.content == b""
    assert "content-length" not in preflight.headers and "content-type" not in preflight.headers
    assert preflight.headers["access-control-allow-origin"] == CONSOLE
    assert preflight.headers["access-control-allow-headers"] == "authorization"
    assert no_token.status_code == 401 and no_token.json()["cause"]
    assert served.status_code == 204
    for answer in (no_token, served):
        assert_cors(answer)
    assert len(system.recorder.requests) == 1  # only the authorized request reached the service


async def test_every_answer_to_an_allowed_origin_carries_the_cors_headers(system: System) -> None:
    base = (await recorder_profile(system, CONSOLE))["serviceLocationInformation"]
    user, origin = bearer(system.user_token()), {"Origin": CONSOLE}
    served = await system.http.get(f"{base}/items", headers={**user, **origin})
    assert served.status_code == 204  # the service's own answer
    no_token = await system.http.get(f"{base}/items", headers=origin)
    outside = await system.http.delete(f"{base}/items", headers={**user, **origin})
    too_high = await system.http.get(
        f"{base}/items", headers={**user, **origin, "Resource-Priority": "mcpttp.15"}
    )
    assert (no_token.status_code, outside.status_code, too_high.status_code) == (401, 403, 403)
    assert no_token.headers["www-authenticate"].startswith("Bearer")  # and readable: exposed
    for answer in (served, no_token, outside, too_high):
        assert_cors(answer)
    # Without an Origin (curl, an SDK) nothing changes, and no CORS field appears.
    plain = await system.http.get(f"{base}/items", headers=user)
    assert plain.status_code == 204 and "access-control-allow-origin" not in plain.headers


async def test_the_engines_own_refusals_carry_the_cors_headers_too(system: System) -> None:
    index = (await recorder_profile(system, CONSOLE))["appProfileIndex"]
    token = system.user_token()
    reader, writer = await asyncio.open_connection("127.0.0.1", system.sas_port)
    try:  # a body far over the limit, announced: refused before it is read (413)
        writer.write(
            f"POST /{index}/items HTTP/1.1\r\nHost: sas\r\nOrigin: {CONSOLE}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: 999999999\r\n\r\n".encode()
        )
        await writer.drain()
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode("latin-1").lower()
    finally:
        writer.close()
    assert head.startswith("http/1.1 413")
    assert f"access-control-allow-origin: {CONSOLE}\r\n" in head and "vary: origin\r\n" in head
    assert system.recorder.requests == []


async def test_an_origin_is_allowed_only_for_its_own_applications_profiles(system: System) -> None:
    mine = (await recorder_profile(system, CONSOLE))["serviceLocationInformation"]
    theirs = (await system.authorize("GM", app="console-2", serviceName="recorder"))[
        "serviceLocationInformation"
    ]
    preflight = {"Origin": CONSOLE, "Access-Control-Request-Method": "GET"}
    assert (await system.http.options(f"{mine}/items", headers=preflight)).status_code == 204
    refused = await system.http.options(f"{theirs}/items", headers=preflight)
    assert refused.status_code == 403 and refused.json()["cause"] == "ORIGIN_NOT_ALLOWED"
    assert "access-control-allow-origin" not in refused.headers
    answered = await system.http.get(
        f"{theirs}/items", headers={**bearer(system.user_token("console-2")), "Origin": CONSOLE}
    )
    assert answered.status_code == 204 and "access-control-allow-origin" not in answered.headers


async def test_an_origin_removed_by_the_administrator_is_no_longer_answered(system: System) -> None:
    profile = await recorder_profile(system, CONSOLE, "http://localhost:8080")
    await allow_origins(system, "console-1", "http://localhost:8080")
    updated = await system.http.get(
        f"{system.api}/mcx-registry/v1/app-profiles/{profile['appProfileId']}",
        headers=bearer(system.app_token()),
    )
    await system.until_routed(updated.json())
    preflight = {"Access-Control-Request-Method": "GET"}
    base = profile["serviceLocationInformation"]
    gone = await system.http.options(f"{base}/items", headers={**preflight, "Origin": CONSOLE})
    kept = await system.http.options(
        f"{base}/items", headers={**preflight, "Origin": "http://localhost:8080"}
    )
    assert (gone.status_code, kept.status_code) == (403, 204)


async def test_a_websocket_from_an_allowed_page_with_the_token_in_the_query(system: System) -> None:
    await allow_origins(system, "console-1", CONSOLE)
    profile = await system.authorize("MCPTT")
    url = profile["serviceLocationInformation"].replace("http://", "ws://") + "/signalling"
    # RFC 6750 2.3: a browser's WebSocket cannot send Authorization; the token rides in the query.
    async with websockets.connect(
        f"{url}?access_token={system.user_token()}",
        origin=Origin(CONSOLE),
        subprotocols=[Subprotocol("sip")],
    ) as ws:
        await ws.send("OPTIONS sip:group-1@mc.example SIP/2.0\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n")
        answer = str(await asyncio.wait_for(ws.recv(), 5))
    assert answer.startswith("SIP/2.0 200")


async def test_a_websocket_from_a_foreign_page_is_refused(system: System) -> None:
    await allow_origins(system, "console-1", CONSOLE)
    profile = await system.authorize("MCPTT")
    url = profile["serviceLocationInformation"].replace("http://", "ws://") + "/signalling"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(
            url, origin=Origin("https://evil.example"), additional_headers=bearer(system.user_token())
        ):
            pass
    assert refused.value.response.status_code == 403
    assert b"ORIGIN_NOT_ALLOWED" in refused.value.response.body
