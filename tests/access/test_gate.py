"""The SAS gate's decisions for browsers (CORS), without sockets: a real gate on a real CSC-15 state
and the IdM's own token validation."""

from __future__ import annotations

from typing import Any

import pytest

from asgate.access.admission import Admission
from asgate.access.gate import SasGate
from asgate.access.state import AccessState
from asgate.access.types import Admit, Reject, RequestHead
from asgate.system.runtime import Runtime
from tests.access.test_policy import profile
from tests.access.test_state import POOL, change
from tests.conftest import Mint

CONSOLE = b"https://console.example"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # the store holds only the token keys here


@pytest.fixture
def gate(rt: Runtime) -> SasGate:
    state = AccessState()
    doc = profile().dump()
    doc["serviceInterfaceDescription"]["allowedOrigins"] = [CONSOLE.decode()]
    grant = {"appId": "console-1", "mcServiceId": "alice"}
    state.apply(
        [
            change(1, "service-pool", "GM/gms", payload=POOL),
            change(2, "app-profile", "p1", payload=doc),
            change(3, "user-authorization", "console-1/alice", payload=grant),
        ],
        0,
    )
    return SasGate(state, rt.validator, admission=Admission(10, 10, 1.0))


def head(
    method: str, path: str, *headers: tuple[bytes, bytes], query: str = "", upgrade: bool = False
) -> RequestHead:
    return RequestHead(method, path, query, list(headers), ("198.51.100.7", 1234), upgrade)


def fields(decision: Any) -> dict[bytes, bytes]:
    return dict(decision.headers if isinstance(decision, Reject) else decision.set_response_headers)


async def test_a_preflight_is_decided_without_a_token(gate: SasGate) -> None:
    asked = head(
        "OPTIONS", "/1/groups", (b"origin", CONSOLE), (b"access-control-request-method", b"POST"),
        (b"access-control-request-headers", b"authorization,asgate-mc-service-id"),
    )  # fmt: skip
    decided = await gate.admit(asked)
    assert isinstance(decided, Reject) and decided.status == 204 and decided.problem == {}
    assert fields(decided)[b"access-control-allow-headers"] == b"authorization"
    assert gate.admit_nowait(asked) == decided  # the fast path decides the same, at once


async def test_the_token_of_a_browsers_websocket_never_reaches_the_instance(
    gate: SasGate, mint: Mint
) -> None:
    token = mint("console-1", "openid", sub="user-alice", mcptt_id="alice")
    upgrade = head(
        "GET", "/1/groups", (b"origin", CONSOLE), query=f"since=a%20b&access_token={token}&x=1", upgrade=True
    )
    admitted = await gate.admit(upgrade)
    assert isinstance(admitted, Admit), admitted
    assert admitted.path == "/gm/groups?since=a%20b&x=1"  # the rest of the query exactly as sent
    assert fields(admitted)[b"access-control-allow-origin"] == CONSOLE
    assert admitted.refusal_headers  # the engine's own refusals (413, 502...) get the fields too
    assert admitted.on_done is not None
    admitted.on_done(101)
    # Not on a plain request: there the token must be in Authorization.
    plain = await gate.admit(head("GET", "/1/groups", (b"origin", CONSOLE), query=f"access_token={token}"))
    assert isinstance(plain, Reject) and plain.status == 401
    assert fields(plain)[b"access-control-allow-origin"] == CONSOLE


async def test_a_websocket_from_a_foreign_origin_is_refused_before_its_token_is_read(gate: SasGate) -> None:
    for origin in (b"https://evil.example", b"null", CONSOLE.upper()):
        refused = await gate.admit(head("GET", "/1/groups", (b"origin", origin), upgrade=True))
        assert isinstance(refused, Reject) and refused.status == 403
        assert refused.problem["cause"] == "ORIGIN_NOT_ALLOWED"
        assert b"access-control-allow-origin" not in fields(refused)
