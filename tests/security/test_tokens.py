"""Boundary: any caller -> every API that takes a bearer token, and the SAS data plane (issue 8
item 4). A forged or confused token is a 401 INVALID_TOKEN problem+json with a fixed phrase, on
every route, and nothing behind the check runs: nothing stored, nothing reaches an MC service."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest
import websockets
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from asgate.kernel.settings import Settings
from asgate.system.runtime import Runtime
from tests.access.system import System, bearer, running_system
from tests.conftest import Mint
from tests.security.test_notifications import ws_url  # noqa: F401 - the app on a real socket

# Routes that take no bearer token: the IdM's own endpoints authenticate clients or users
# otherwise, and the documents are public.
PUBLIC = re.compile(r"^/(oauth2/|\.well-known/|docs|openapi/|healthz$)")
# What must never appear in a refusal: attacker text, Python reprs, library exception names.
LEAKS = re.compile(r"EVIL|Error|Exception|Traceback|<|\{|\\x")


def _b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    base = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": "EVIL",
        "client_id": "EVIL",
        "scope": "msgs-asregistration msgs-admin mcx-registry mcx-registry-admin mcx-service-registration "
        "mcx-access-profiles mcx-registry-sync asgate-metrics openid 3gpp:mc:ptt_service",
        "exp": 4_000_000_000,
    }
    return {**base, **overrides}


def _raw(header: dict[str, Any], claims: Any) -> str:
    return f"{_b64(header)}.{claims if isinstance(claims, str) else _b64(claims)}.{_b64(b'EVIL' * 16)}"


def _signed(rt: Runtime, claims: dict[str, Any], **header: Any) -> str:
    key = rt.keyring.active
    return jwt.encode(claims, key.private_key, algorithm="ES256", headers={"kid": key.kid, **header})


def _rsa_signed(rt: Runtime, claims: dict[str, Any], **header: Any) -> str:
    key = rt.keyring.active_for("RS256")
    return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid, **header})


def _revoked(rt: Runtime) -> str:
    """A genuine access token, then revoked (RFC 7009) as ``POST /oauth2/revoke`` does."""
    claims = _claims(rt.settings, jti="EVIL-revoked", sid="EVIL-login")
    rt.validator.revocations.add("jti", "EVIL-revoked", 4_000_000_000)
    return _signed(rt, claims, typ="at+jwt")


def _revoked_login(rt: Runtime) -> str:
    """A genuine access token of a login whose refresh token was revoked (its ``sid``)."""
    rt.validator.revocations.add("sid", "EVIL-ended-login", 4_000_000_000)
    return _signed(rt, _claims(rt.settings, jti="EVIL-live", sid="EVIL-ended-login"), typ="at+jwt")


# One per attack class; each is what an attacker can make with no credentials (or, for the
# confused ones, with a token of the right issuer that is not an access token).
FORGERIES: dict[str, Callable[[Runtime], str]] = {
    # issue 8: a header-only token, RS256 and a known kid, used to answer 500 everywhere
    "rs256-with-the-idm-ec-key": lambda rt: _raw(
        {"alg": "RS256", "kid": rt.keyring.active.kid, "typ": "at+jwt"}, _claims(rt.settings)
    ),
    "eddsa-with-the-idm-ec-key": lambda rt: _raw(
        {"alg": "EdDSA", "kid": rt.keyring.active.kid, "typ": "at+jwt"}, _claims(rt.settings)
    ),
    "malformed-base64": lambda rt: "eyJ!EVIL.eyJ.sig",
    "header-not-json": lambda rt: f"{_b64(b'{EVIL')}.{_b64(_claims(rt.settings))}.c2ln",
    "payload-not-an-object": lambda rt: _raw({"alg": "ES256", "kid": rt.keyring.active.kid}, _b64(["EVIL"])),
    "huge": lambda rt: _raw({"alg": "ES256"}, _claims(rt.settings, pad="EVIL" * 3300)),
    "exp-a-string": lambda rt: _signed(rt, _claims(rt.settings, exp="EVIL"), typ="at+jwt"),
    "iss-a-dict": lambda rt: _raw(
        {"alg": "ES256", "kid": rt.keyring.active.kid, "typ": "at+jwt"}, _claims(rt.settings, iss={"EVIL": 1})
    ),
    "aud-a-number": lambda rt: _signed(rt, _claims(rt.settings, aud=7), typ="at+jwt"),
    "crit-header": lambda rt: _signed(rt, _claims(rt.settings), typ="at+jwt", crit=["EVIL"], EVIL=1),
    "jku-header": lambda rt: _signed(rt, _claims(rt.settings), typ="at+jwt", jku="http://127.0.0.1:1/EVIL"),
    "kid-a-dict": lambda rt: _raw(
        {"alg": "ES256", "kid": {"EVIL": 1}, "typ": "at+jwt"}, _claims(rt.settings)
    ),
    # confused: signed by the IdM's own key, but not an access token (RFC 9068 2.1)
    "untyped": lambda rt: _signed(rt, _claims(rt.settings)),
    "id-token": lambda rt: rt.keyring.sign(_claims(rt.settings, nonce="EVIL", scope=None), typ="JWT"),
    "sas-assertion-type": lambda rt: _signed(rt, _claims(rt.settings), typ="asgate-sas+jwt"),
    # the IdM's RSA key signs ID tokens only: never an access token, typed or not
    "at-jwt-signed-by-the-idm-rsa-key": lambda rt: _rsa_signed(rt, _claims(rt.settings), typ="at+jwt"),
    "rs256-id-token": lambda rt: rt.keyring.sign(
        _claims(rt.settings, nonce="EVIL", scope=None), typ="JWT", alg="RS256"
    ),
    # genuine, but revoked (issue 9): by its jti, or with its whole login
    "revoked": _revoked,
    "revoked-login": _revoked_login,
}


def _routes(app: ASGIApp) -> Iterator[Route]:
    """Every HTTP route the control app serves (found by walking its routers)."""
    seen: list[BaseRoute] = []
    stack: list[Any] = [app]
    while stack:
        node = stack.pop()
        for attribute in ("app", "_fallback"):
            if hasattr(node, attribute):
                stack.append(getattr(node, attribute))
        seen.extend(getattr(node, "routes", []) if not isinstance(node, Route) else [])
    for route in seen:
        if isinstance(route, Route) and not PUBLIC.match(route.path):
            yield route


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: "1" if ":int" in m.group(0) else "x1", path)


def _assert_refused(response: httpx.Response, where: str) -> None:
    assert response.status_code == 401, (where, response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json", where
    body = response.json()
    assert body["cause"] == "INVALID_TOKEN", where
    assert not LEAKS.search(body["detail"]), (where, body["detail"])
    assert not LEAKS.search(response.headers["www-authenticate"]), where


async def _stored(rt: Runtime) -> Any:
    """What a request behind the token check could change: every store a route writes to."""
    store = rt.store
    return (
        await store.clients.count(),
        await store.registrations.count(),
        len(await store.audit.scan(limit=10_000)),
        await store.registry.last_seq(),
        len(await store.registry.apps()),
        len(await store.registry.grants()),
        len(await store.registry.profiles()),
        len(await store.registry.instances()),
    )


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_a_forged_or_confused_token_is_a_401_on_every_api(
    app: ASGIApp, http: httpx.AsyncClient, rt: Runtime, forgery: str
) -> None:
    token = FORGERIES[forgery](rt)
    routes = list(_routes(app))
    assert len(routes) >= 30  # msgs, msgs-admin, registry, service registration, admin, CSC-15, ...
    before = await _stored(rt)
    for route in routes:
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            path = _concrete(route.path)
            response = await http.request(method, path, headers=bearer(token), json={"EVIL": 1})
            _assert_refused(response, f"{method} {path}")
    assert await _stored(rt) == before


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # the data plane does not touch the store


async def test_forged_and_confused_tokens_never_reach_an_mc_service(
    make_settings: Callable[..., Settings],
) -> None:
    async with running_system(make_settings) as system:
        await _data_plane_probes(system)


async def _data_plane_probes(system: System) -> None:
    base = (await system.authorize("GM", serviceName="recorder"))["serviceLocationInformation"]
    assert (await system.http.get(f"{base}/items", headers=bearer(system.user_token()))).status_code == 204
    assert len(system.recorder.requests) == 1
    for name, forge in FORGERIES.items():
        for method in ("GET", "POST"):
            response = await system.http.request(
                method, f"{base}/items", headers=bearer(forge(system.rt)), json={"EVIL": 1}
            )
            if name == "huge" and response.status_code == 431:
                continue  # the SAS's header limit refuses it before any token check
            _assert_refused(response, f"SAS {method} {name}")
    assert len(system.recorder.requests) == 1  # nothing reached the MC service


async def test_a_forged_or_confused_token_cannot_open_the_notification_socket(
    ws_url: str,  # noqa: F811 - the fixture imported above
    rt: Runtime,
    mint: Mint,
) -> None:
    async with websockets.connect(ws_url, additional_headers=bearer(mint("console-1", "mcx-registry"))):
        pass  # a real token opens it
    for name, forge in FORGERIES.items():
        if name == "huge":
            continue  # an HTTP header of that size is refused by the server's parser first
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(ws_url, additional_headers=bearer(forge(rt))):
                pass
        assert refused.value.response.status_code == 403, name  # closed before the handshake
