"""Trust boundary: a web page in an MC user's browser → the service access server (and the
control-plane endpoints a browser application calls).

What crosses it: requests a page makes with ``fetch()`` or a WebSocket, each with the ``Origin`` the
browser sets. The attacker is a page on an origin the administrator did not allow (or a sandboxed
one, ``null``), trying to have the browser read answers, or to ride a WebSocket with a token it got
hold of (cross-site WebSocket hijacking). Every test asserts what the page sees (no
``Access-Control-Allow-Origin``: the browser withholds the answer) and that nothing reached an
instance (a real recording server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import websockets
from websockets.typing import Origin

from asgate.kernel.settings import Settings
from tests.access.system import System, bearer, running_system
from tests.access.test_cors import CONSOLE, allow_origins

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sas-system")]

# Origins that are not https://console.example, however close they look.
LOOKALIKES = [
    "null",  # sandboxed iframes, file: pages, data: URLs
    "https://console.example/",  # a path: never what a browser sends
    "https://console.example/app",
    "HTTPS://CONSOLE.EXAMPLE",  # a browser sends lower case; no second parser is asked
    "https://console.example:443",  # nor the default port
    "http://console.example",  # another scheme is another origin
    "https://console.example:8443",
    "https://console.example.evil.example",
    "https://evil-console.example",
    "https://console.example@evil.example",
    "https://console.example, https://evil.example",
    "*",
]


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def system(make_settings: Callable[..., Settings]) -> AsyncIterator[System]:
    async with running_system(make_settings, sas_refusal_hold=0.0) as started:
        yield started


async def _recorder(system: System) -> dict[str, Any]:
    await allow_origins(system, "console-1", CONSOLE)
    return await system.authorize("GM", serviceName="recorder")


async def test_a_preflight_from_an_origin_not_allowed_is_refused_without_cors_headers(system: System) -> None:
    profile = await _recorder(system)
    base = profile["serviceLocationInformation"]
    unknown = await system.http.options(
        f"{system.sas}/999999/items",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    for origin in ["https://evil.example", *LOOKALIKES]:
        refused = await system.http.options(
            f"{base}/items", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
        )
        assert refused.status_code == 403, origin
        assert refused.json()["cause"] == "ORIGIN_NOT_ALLOWED"
        assert not any(h.startswith("access-control-") for h in refused.headers), origin
        # An existing index and an unknown one are answered alike: a foreign page learns nothing.
        same = ("status", "cause", "detail")
        assert [refused.json()[k] for k in same] == [unknown.json()[k] for k in same]
    assert system.recorder.requests == []


async def test_answers_to_an_origin_not_allowed_carry_no_cors_headers(system: System) -> None:
    base = (await _recorder(system))["serviceLocationInformation"]
    user = bearer(system.user_token())
    for origin in LOOKALIKES:
        answered = await system.http.get(f"{base}/items", headers={**user, "Origin": origin})
        refused = await system.http.get(f"{base}/items", headers={"Origin": origin})
        assert answered.status_code == 204 and refused.status_code == 401, origin
        for response in (answered, refused):
            assert "access-control-allow-origin" not in response.headers, origin
            assert "access-control-allow-credentials" not in response.headers, origin
            assert "Origin" in response.headers["vary"], origin  # no cache mixes it with an allowed one


async def test_a_preflight_never_reaches_an_instance_and_grants_no_identity_header(system: System) -> None:
    base = (await _recorder(system))["serviceLocationInformation"]
    preflight = await system.http.options(
        f"{base}/items",
        headers={
            "Origin": CONSOLE,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "asgate-mc-service-id, asgate-application, asgate-assertion",
        },
    )
    assert preflight.status_code == 204
    assert "access-control-allow-headers" not in preflight.headers  # so the browser sends none of them
    odd = await system.http.options(
        f"{base}/items", headers={"Origin": CONSOLE, "Access-Control-Request-Method": "TRACE"}
    )
    assert odd.status_code == 403 and "access-control-allow-origin" not in odd.headers
    assert system.recorder.requests == []


async def test_a_websocket_from_a_foreign_origin_is_refused_even_with_a_valid_token(system: System) -> None:
    await allow_origins(system, "console-1", CONSOLE)
    profile = await system.authorize("MCPTT")
    url = profile["serviceLocationInformation"].replace("http://", "ws://") + "/signalling"
    token = system.user_token()
    for origin in ["https://evil.example", "null", "https://console.example.evil.example"]:
        attempts: list[dict[str, Any]] = [
            {"additional_headers": bearer(token)},
            {"uri": f"{url}?access_token={token}"},
        ]
        for attempt in attempts:
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(
                    attempt.get("uri", url),
                    origin=Origin(origin),
                    additional_headers=attempt.get("additional_headers"),
                ):
                    pass
            assert refused.value.response.status_code == 403, origin
            assert b"ORIGIN_NOT_ALLOWED" in refused.value.response.body
            assert "access-control-allow-origin" not in refused.value.response.headers


async def test_an_origin_the_administrator_cannot_allow(system: System) -> None:
    ops = bearer(system.app_token("ops", "mcx-registry-admin"))
    url = f"{system.api}/mcx-registry-admin/v1/apps/console-1"
    for origin in [
        "*",
        "null",
        "https://console.example/app",
        "javascript:alert(1)",
        "https://u@console.example",
    ]:
        spec = {"allowedServices": [{"serviceType": "GM"}], "allowedOrigins": [origin]}
        refused = await system.http.put(url, json=spec, headers=ops)
        assert refused.status_code == 400, origin
        assert refused.json()["invalidParams"][0]["param"] == "/allowedOrigins/0"
    shown = await system.http.get(url, headers=ops)
    assert shown.json()["allowedOrigins"] == []  # nothing was stored
