"""Boundary: anyone on the network -> the IdM (issue 8 items 8 and 11).

Brute force at ``/oauth2/token``: failed client authentications are counted per client id and
per source address, shared through Redis between IdM processes; past the limit the request is a
429 with ``Retry-After`` and a ``cause``, answered before any secret is hashed. Login CSRF: the
sign-in form is accepted only from the IdM's own origin or with the per-form token bound to the
browser that loaded it.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from starlette.types import ASGIApp

from asgate.client.browser import parse_login_page
from asgate.domain.idm import Client
from asgate.idm import csrf, passwords
from asgate.idm.passwords import hash_secret
from asgate.kernel.settings import Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests.access.conftest import REDIS_URL, delete_matching, redis  # noqa: F401 - fixture
from tests.conftest import Provision
from tests.idm.conftest import AddUser, add_user, alice, authorize_url, console  # noqa: F401 - fixtures

LIMIT, PER_SOURCE = 3, 6


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        idm_token_max_failures=LIMIT, idm_token_max_failures_per_source=PER_SOURCE, idm_refusal_hold=0.0
    )


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every Argon2 verification the IdM runs (a spy: the real function still runs)."""
    seen: list[str] = []
    real = passwords.verify_secret

    def spy(secret_hash: str | None, secret: str) -> bool:
        seen.append(secret)
        return real(secret_hash, secret)

    monkeypatch.setattr(passwords, "verify_secret", spy)
    return seen


def _from(app: ASGIApp, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


def _address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"  # noqa: S311


async def _token(http: httpx.AsyncClient, client_id: str, secret: str) -> httpx.Response:
    return await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )


def _assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 60
    body = response.json()
    assert body["error"] == "temporarily_unavailable"
    assert body["cause"] == "TOO_MANY_FAILED_AUTHENTICATIONS"
    assert response.headers["cache-control"] == "no-store"


async def test_wrong_secrets_for_one_client_are_throttled_before_any_hash(
    app: ASGIApp, provision: Provision, hashes: list[str]
) -> None:
    await provision("as-1")
    async with _from(app, _address()) as attacker, _from(app, _address()) as elsewhere:
        for _ in range(LIMIT):
            assert (await _token(attacker, "as-1", "guess")).status_code == 401
        assert len(hashes) == LIMIT
        _assert_throttled(await _token(attacker, "as-1", "guess"))
        # From another address too (the count is per client id), and even with the right secret
        # when this process has not seen it verified yet.
        _assert_throttled(await _token(elsewhere, "as-1", "as-1-secret"))
        assert len(hashes) == LIMIT  # nothing hashed for the refused requests


async def test_concurrent_guesses_cannot_slip_under_the_limit(
    app: ASGIApp, provision: Provision, hashes: list[str]
) -> None:
    await provision("as-1")
    async with _from(app, _address()) as attacker:
        answers = await asyncio.gather(*(_token(attacker, "as-1", f"guess-{i}") for i in range(20)))
    assert sorted(r.status_code for r in answers) == [401] * LIMIT + [429] * (20 - LIMIT)
    assert len(hashes) == LIMIT  # not one hash per concurrent request


async def test_a_client_that_proved_its_secret_is_not_locked_out_by_a_flood(
    app: ASGIApp, provision: Provision, hashes: list[str]
) -> None:
    await provision("as-1")
    async with _from(app, _address()) as legit, _from(app, _address()) as attacker:
        assert (await _token(legit, "as-1", "as-1-secret")).status_code == 200
        for _ in range(LIMIT + 5):
            await _token(attacker, "as-1", "guess")
        before = len(hashes)
        assert (await _token(legit, "as-1", "as-1-secret")).status_code == 200
        assert len(hashes) == before  # answered from the verified cache, not behind the flood


async def test_one_address_trying_many_client_ids_is_throttled(
    app: ASGIApp, provision: Provision, hashes: list[str]
) -> None:
    await provision("as-1")
    async with _from(app, _address()) as attacker, _from(app, _address()) as neighbour:
        for i in range(PER_SOURCE):
            assert (await _token(attacker, f"guess-{i}", "x")).status_code == 401
        _assert_throttled(await _token(attacker, "as-1", "as-1-secret"))
        assert len(hashes) == PER_SOURCE
        assert (await _token(neighbour, "as-1", "as-1-secret")).status_code == 200


async def test_refresh_and_code_grants_count_failures_too(app: ASGIApp, provision: Provision) -> None:
    await provision("as-1")
    async with _from(app, _address()) as attacker:
        for _ in range(LIMIT):
            form = {
                "grant_type": "refresh_token",
                "refresh_token": "r",
                "client_id": "as-1",
                "client_secret": "g",
            }
            assert (await attacker.post("/oauth2/token", data=form)).status_code == 401
        form = {"grant_type": "authorization_code", "code": "c", "client_id": "as-1", "client_secret": "g"}
        _assert_throttled(await attacker.post("/oauth2/token", data=form))


@pytest.fixture
async def shared_idms(
    make_settings: Callable[..., Settings],
    redis: aioredis.Redis,  # noqa: F811 - the fixture imported above
) -> AsyncIterator[tuple[ASGIApp, ASGIApp, Runtime]]:
    """Two IdM processes' apps over one database and one Redis (as two replicas would run)."""
    settings = make_settings(
        idm_token_max_failures=LIMIT,
        idm_token_max_failures_per_source=1000,
        idm_redis_url=REDIS_URL,
        idm_refusal_hold=0.0,
    )
    async with Runtime.open(settings) as one, Runtime.open(settings) as two:
        async with control_app(one, ["idm"]) as first, control_app(two, ["idm"]) as second:
            yield first, second, one


async def test_two_idm_processes_share_the_failure_counts_through_redis(
    shared_idms: tuple[ASGIApp, ASGIApp, Runtime],
    redis: aioredis.Redis,  # noqa: F811 - the fixture imported above
    hashes: list[str],
) -> None:
    first, second, rt = shared_idms
    client_id = f"as-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    secret_hash = hash_secret(f"{client_id}-secret")
    await rt.store.write(
        lambda tx: tx.clients.add(
            Client(
                client_id=client_id, secret_hash=secret_hash, scopes=("x",), created_at=now, updated_at=now
            )
        )
    )
    try:
        async with _from(first, _address()) as a, _from(second, _address()) as b:
            for i in range(LIMIT):
                assert (await _token(a if i % 2 else b, client_id, "guess")).status_code == 401
            _assert_throttled(await _token(a, client_id, f"{client_id}-secret"))
            _assert_throttled(await _token(b, client_id, f"{client_id}-secret"))
            assert len(hashes) == LIMIT
    finally:
        await delete_matching(redis, f"asgate:idm:client:client:{client_id}")


# ---------------------------------------------------------------- login CSRF (item 11)


async def _sign_in_page(http: httpx.AsyncClient) -> dict[str, str]:
    """GET the login page as a browser would; the form's fields (handle, csrf token)."""
    page = await http.get(authorize_url())
    assert page.status_code == 200, page.text
    return parse_login_page(page.text).fields


def _attempt(attacker: dict[str, str], victim_key: str) -> dict[str, Any]:
    """What a cross-site page can make the victim's browser post: the attacker's own form
    fields (or guesses), with or without the victim's cookie and with the browser's headers."""
    own = {**attacker, "username": "mallory", "password": "mallory-password"}
    return {
        "evil-origin": (own, {"Origin": "https://evil.example"}, None, OTHER_SITE),
        "evil-origin-same-host-other-port": (own, {"Origin": "http://testserver:8443"}, None, OTHER_SITE),
        "cross-site-fetch-metadata": (own, {"Sec-Fetch-Site": "cross-site"}, victim_key, OTHER_SITE),
        "same-site-fetch-metadata": (own, {"Sec-Fetch-Site": "same-site"}, None, OTHER_SITE),
        "evil-referer": (own, {"Referer": "https://evil.example/page"}, None, OTHER_SITE),
        "null-origin-no-cookie": (own, {"Origin": "null"}, None, MISSING),
        "no-signal-no-cookie": (own, {}, None, MISSING),
        "victim-cookie-attacker-token": (own, {}, victim_key, MISMATCH),
        "guessed-token": ({**own, "csrf": "A" * 43}, {}, victim_key, MISMATCH),
        "no-token": ({k: v for k, v in own.items() if k != "csrf"}, {}, victim_key, MISSING),
    }


OTHER_SITE, MISSING, MISMATCH = "posted from another site", "token is missing", "does not match this browser"


@pytest.mark.usefixtures("console", "alice")
@pytest.mark.parametrize("attempt", list(_attempt({}, "")))
async def test_a_cross_site_sign_in_post_is_refused_audited_and_spends_nothing(
    http: httpx.AsyncClient,
    app: ASGIApp,
    rt: Runtime,
    add_user: AddUser,  # noqa: F811 - the fixture imported above
    attempt: str,
) -> None:
    await add_user("mallory")
    async with _from(app, "192.0.2.66") as mallory:
        attacker = await _sign_in_page(mallory)  # the attacker's own authorization request
    victim = await _sign_in_page(http)  # the victim's browser has loaded a sign-in page too
    victim_key = http.cookies[csrf.COOKIE]
    fields, headers, cookie, reason = _attempt(attacker, victim_key)[attempt]
    async with _from(app, "198.51.100.7") as browser:  # the victim's browser, on the evil page
        if cookie is not None:
            browser.cookies.set(csrf.COOKIE, cookie, domain="testserver.local", path="/oauth2/authorize")
        response = await browser.post("/oauth2/authorize", data=fields, headers=headers)
    assert response.status_code == 403 and "location" not in response.headers
    assert "CROSS_SITE_REQUEST" in response.text and response.headers["content-type"].startswith("text/html")
    events = await rt.store.audit.scan(action="oidc.login", limit=100)
    assert [(e.actor, e.outcome) for e in events] == [("source/198.51.100.7", "denied")]
    assert reason in (events[0].reason or "") and reason in response.text
    # Nothing was spent: the victim's own pending request still signs in from its page.
    ok = await http.post(
        "/oauth2/authorize", data={**victim, "username": "alice", "password": "alice-password"}
    )
    assert ok.status_code == 303 and "code=" in ok.headers["location"]


@pytest.mark.usefixtures("console", "alice")
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://testserver"},
        {"Referer": "http://testserver/x"},
    ],
    ids=["token-only", "fetch-metadata", "origin", "referer"],
)
async def test_a_same_origin_or_tokened_sign_in_post_is_taken(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    fields = await _sign_in_page(http)
    if headers:  # a browser proving the origin needs no token
        fields.pop("csrf")
    response = await http.post(
        "/oauth2/authorize",
        data={**fields, "username": "alice", "password": "alice-password"},
        headers=headers,
    )
    assert response.status_code == 303 and "code=" in response.headers["location"]


async def test_a_throttled_refusal_is_held_before_it_is_sent(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(idm_token_max_failures=1, idm_refusal_hold=0.3)
    async with Runtime.open(settings) as rt, control_app(rt, ["idm"]) as app:
        async with _from(app, _address()) as attacker:
            assert (await _token(attacker, "ghost", "guess")).status_code == 401
            started = time.monotonic()
            _assert_throttled(await _token(attacker, "ghost", "guess"))
            assert time.monotonic() - started >= 0.3  # a client that retries at once is slowed


# ---------------------------------------------------------------- introspection (issue 9)


async def _introspect(http: httpx.AsyncClient, client_id: str, secret: str, token: str) -> httpx.Response:
    return await http.post("/oauth2/introspect", data={"token": token}, auth=(client_id, secret))


async def test_guessing_a_resource_servers_secret_at_introspection_is_throttled_before_any_hash(
    app: ASGIApp, provision: Provision, hashes: list[str]
) -> None:
    await provision("rs-1", scopes=("token-introspection",))
    async with _from(app, _address()) as attacker:
        for _ in range(LIMIT):
            assert (await _introspect(attacker, "rs-1", "guess", "t")).status_code == 401
        _assert_throttled(await _introspect(attacker, "rs-1", "guess", "t"))
        assert len(hashes) == LIMIT
        # Guessing at the token endpoint counts against the same client.
        _assert_throttled(await _token(attacker, "rs-1", "guess"))


async def test_introspection_tells_a_client_without_the_scope_nothing(
    app: ASGIApp, provision: Provision
) -> None:
    await provision("as-1", scopes=("msgs-asregistration",))
    async with _from(app, _address()) as curious:
        live = (await _token(curious, "as-1", "as-1-secret")).json()["access_token"]
        for token in (live, "unknown"):
            refused = await _introspect(curious, "as-1", "as-1-secret", token)
            assert refused.status_code == 403 and refused.json()["error"] == "unauthorized_client"
            assert "active" not in refused.json()  # not even whether the token exists
        public = await curious.post("/oauth2/introspect", data={"token": live, "client_id": "console-1"})
        assert public.status_code == 401 and "active" not in public.json()
