"""verify_sas_assertion and ServiceAgent.verify_sas_assertion against the real IdM's JWKS (the app
in-process), with assertions minted by the SAS's own minter."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from asgate.access.assertion import AssertionMinter
from asgate.client import (
    ProblemError,
    SasAssertionError,
    SasCaller,
    SasKeys,
    ServiceAgent,
    pool_audience,
    verify_sas_assertion,
)
from asgate.domain.registry import ServiceRegistration
from asgate.kernel.problem import render
from asgate.samples import SPECS
from asgate.system.runtime import Runtime

ALICE = "alice@mc.example"
POOL = ("GM", "sample-gm")


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # no store involved


def _minter(rt: Runtime) -> AssertionMinter:
    return AssertionMinter(rt.keyring, issuer=rt.settings.sas_issuer)


def _keys(app: ASGIApp, rt: Runtime, **kw: float) -> SasKeys:
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    return SasKeys(f"{rt.settings.public_root}/oauth2/jwks", http=http, **kw)  # type: ignore[arg-type]


async def test_a_minted_assertion_verifies_through_the_published_jwks(app: ASGIApp, rt: Runtime) -> None:
    token = _minter(rt).mint("console-1", ALICE, POOL, "mcpttq.3", {"mcptt_id": ALICE, "mcdata_id": "a@d"})
    keys = _keys(app, rt)
    headers = [(b"asgate-assertion", token), (b"host", b"gm")]  # ASGI-style pairs work too
    caller = await verify_sas_assertion(
        headers, keys, issuer=rt.settings.sas_issuer, audience=pool_audience(*POOL)
    )
    assert caller == SasCaller(
        ALICE, "console-1", "mcpttq.3", {"mcptt_id": ALICE, "mcdata_id": "a@d"}, caller.claims
    )
    assert caller.claims["aud"] == "GM/sample-gm" and caller.claims["iss"] == rt.settings.sas_issuer
    assert keys.fetches == 1
    await verify_sas_assertion(
        {"Asgate-Assertion": token.decode()}, keys, issuer=caller.claims["iss"], audience="GM/sample-gm"
    )
    assert keys.fetches == 1  # cached


async def test_a_rotated_key_is_fetched_once_the_refresh_floor_allows(app: ASGIApp, rt: Runtime) -> None:
    monotonic = [0.0]
    keys = _keys(app, rt, min_refresh=30.0)
    keys._clock = lambda: monotonic[0]
    minter = _minter(rt)
    issuer, audience = rt.settings.sas_issuer, pool_audience(*POOL)
    before = minter.mint("console-1", ALICE, POOL, "", {})
    await verify_sas_assertion({"asgate-assertion": before}, keys, issuer=issuer, audience=audience)
    await rt.signing_keys.rotate("ES256", delay=0)
    after = minter.mint("console-1", ALICE, POOL, "", {})
    assert after != before  # the minter drops what the old key signed
    with pytest.raises(SasAssertionError, match="unknown key"):
        await verify_sas_assertion({"asgate-assertion": after}, keys, issuer=issuer, audience=audience)
    monotonic[0] = 31.0
    caller = await verify_sas_assertion({"asgate-assertion": after}, keys, issuer=issuer, audience=audience)
    assert caller.mc_service_id == ALICE and keys.fetches == 2


async def test_a_service_on_service_agent_verifies_in_a_few_lines(app: ASGIApp, rt: Runtime) -> None:
    registration: ServiceRegistration = SPECS["gm"].registration("gm-1", 9101)
    transport = httpx.ASGITransport(app=app)

    # docs/sdk.md, "Verifying the SAS's assertion in an MC service": these lines, as they are there.
    agent = ServiceAgent(rt.settings.public_root, registration, None, transport=transport)

    async def list_groups(request: Request) -> JSONResponse:
        caller = await agent.verify_sas_assertion(request)  # a 401 ProblemError unless valid
        return JSONResponse({"user": caller.mc_service_id, "app": caller.client_id})

    service = Starlette(
        routes=[Route("/gm/groups", list_groups)],
        exception_handlers={ProblemError: lambda request, exc: render(exc)},
    )
    token = _minter(rt).mint("console-1", ALICE, POOL, "", {"mcptt_id": ALICE})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service), base_url="http://gm") as client:
        ok = await client.get("/gm/groups", headers={"Asgate-Assertion": token.decode()})
        assert ok.json() == {"user": ALICE, "app": "console-1"}
        forged = await client.get("/gm/groups", headers={"Asgate-MC-Service-Id": ALICE})
        assert forged.status_code == 401 and forged.json()["cause"] == "INVALID_SAS_ASSERTION"
        elsewhere = _minter(rt).mint("console-1", ALICE, ("CM", "sample-cm"), "", {})
        other_pool = await client.get("/gm/groups", headers={"Asgate-Assertion": elsewhere.decode()})
        assert other_pool.status_code == 401 and "another service pool" in other_pool.json()["detail"]
    await agent.stop(deregister=False)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h, p, s: f"{h}.{p}.{s[:-4]}",  # a truncated signature
        lambda h, p, s: f"{h}.{p}.{'A' * 86}",  # a signature of the right size that is no ECDSA pair
        lambda h, p, s: f"{h}.{_b64(b'[1, 2]')}.{s}",  # a payload that is not an object
        lambda h, p, s: f"{h}.{p}!.{s}",  # not base64url
        lambda h, p, s: f"{_b64(b'[]')}.{p}.{s}",  # a header that is not an object
    ],
)
async def test_whatever_the_bytes_a_bad_assertion_is_a_refusal_not_a_crash(
    app: ASGIApp, rt: Runtime, mangle: Any
) -> None:
    header, payload, signature = (
        _minter(rt).mint("console-1", ALICE, POOL, "", {"mcptt_id": ALICE}).decode().split(".")
    )
    keys = _keys(app, rt)
    with pytest.raises(SasAssertionError):
        await verify_sas_assertion(
            {"Asgate-Assertion": mangle(header, payload, signature)},
            keys,
            issuer=rt.settings.sas_issuer,
            audience=pool_audience(*POOL),
        )


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
