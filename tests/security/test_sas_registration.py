"""Trust boundary: service access server -> registry (registration, ``PUT``/``DELETE
/mcx-registry-sync/v1/access-servers/{sasId}``, issue 10).

What crosses it: an access server's ID and the URL where the registry will push CSC-15, with the
registry's own token. What could go wrong: any holder of ``mcx-access-profiles`` (an application or
service given that scope by mistake) registers a URL and receives every profile, grant and pool, and
the registry's token with them; the URL points at cloud metadata or the registry's own loopback
(SSRF); an access server takes over, moves or removes another one's registration; registrations
without bound; malformed IDs and bodies. Each test checks the refusal, that nothing was stored and
that the attempt is in the audit log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from asgate.kernel.settings import DEFAULT_DENY_HOSTS, Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests.conftest import bearer

SYNC = "/mcx-registry-sync/v1/access-servers"
ADMIN = "/mcx-registry-admin/v1/access-servers"
GOOD = "http://sas-1.mc.example:7480"


@pytest.fixture
async def registry(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[Runtime, httpx.AsyncClient]]:
    # The outbound policy as shipped (tests elsewhere lift loopback for their receivers).
    settings = make_settings(
        outbound_allow_loopback=False, outbound_deny_hosts=list(DEFAULT_DENY_HOSTS), registry_sas_max=2
    )
    async with Runtime.open(settings) as rt, control_app(rt, ["registry"]) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            yield rt, http


def sas(mint: Any, sas_id: str) -> dict[str, str]:
    return bearer(mint(f"asgate-access-{sas_id}", "mcx-access-profiles"))


async def denials(rt: Runtime) -> list[tuple[str, str, str]]:
    events = await rt.store.audit.scan(limit=100)
    return [(e.actor, e.action, e.reason or "") for e in events if e.outcome == "denied"]


async def test_a_client_that_is_not_an_access_server_cannot_register(registry: Any, mint: Any) -> None:
    rt, http = registry
    for client in ("console-1", "gms-1", "asgate-registry", "asgate-access"):
        token = bearer(mint(client, "mcx-access-profiles"))  # the scope, by mistake or theft
        response = await http.put(f"{SYNC}/sas-x", json={"csc15Uri": GOOD}, headers=token)
        assert (response.status_code, response.json()["cause"]) == (403, "ACCESS_SERVER_CLIENT_NOT_ALLOWED")
        removed = await http.delete(f"{SYNC}/sas-x", headers=token)
        assert removed.status_code == 403
    without_scope = await http.put(
        f"{SYNC}/sas-x", json={"csc15Uri": GOOD}, headers=bearer(mint("asgate-access-sas-x", "mcx-registry"))
    )
    assert (without_scope.status_code, without_scope.json()["cause"]) == (403, "INSUFFICIENT_SCOPE")
    assert await rt.store.registry.access_servers() == []
    refused = await denials(rt)
    assert (
        "console-1",
        "access-server.put",
        "ACCESS_SERVER_CLIENT_NOT_ALLOWED: not an access server client",
    ) in refused


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://metadata.google.internal",
        "http://127.0.0.1:7480",
        "http://localhost:7480",
        "http://[::ffff:127.0.0.1]:7480",
        "file:///etc/passwd",
        "http://user@sas-1.mc.example",
        f"{GOOD}/?x=1",
        f"{GOOD}#f",
    ],
)
async def test_the_push_url_passes_the_outbound_policy(registry: Any, mint: Any, uri: str) -> None:
    rt, http = registry
    response = await http.put(f"{SYNC}/sas-1", json={"csc15Uri": uri}, headers=sas(mint, "sas-1"))
    body = response.json()
    assert (response.status_code, body["cause"]) == (400, "URI_NOT_ALLOWED")
    assert body["invalidParams"][0]["param"] == "/csc15Uri"
    assert await rt.store.registry.access_servers() == []


async def test_an_access_server_cannot_take_over_move_or_remove_another_ones_registration(
    registry: Any, mint: Any
) -> None:
    rt, http = registry
    assert (
        await http.put(f"{SYNC}/sas-1", json={"csc15Uri": GOOD}, headers=sas(mint, "sas-1"))
    ).status_code == 201
    thief = sas(mint, "sas-2")
    moved = await http.put(f"{SYNC}/sas-1", json={"csc15Uri": "http://thief.mc.example"}, headers=thief)
    assert (moved.status_code, moved.json()["cause"]) == (403, "ACCESS_SERVER_NOT_OWNED")
    removed = await http.delete(f"{SYNC}/sas-1", headers=thief)
    assert (removed.status_code, removed.json()["cause"]) == (403, "ACCESS_SERVER_NOT_OWNED")
    (kept,) = await rt.store.registry.access_servers()
    assert (kept.sas_id, kept.owner, kept.url) == ("sas-1", "asgate-access-sas-1", GOOD)
    actions = {(actor, action) for actor, action, _ in await denials(rt)}
    assert actions == {
        ("asgate-access-sas-2", "access-server.put"),
        ("asgate-access-sas-2", "access-server.delete"),
    }


async def test_registrations_are_bounded(registry: Any, mint: Any) -> None:
    rt, http = registry
    for n in (1, 2):
        url = f"http://sas-{n}.mc.example"
        assert (
            await http.put(f"{SYNC}/sas-{n}", json={"csc15Uri": url}, headers=sas(mint, f"sas-{n}"))
        ).status_code == 201
    third = await http.put(f"{SYNC}/sas-3", json={"csc15Uri": GOOD}, headers=sas(mint, "sas-3"))
    assert (third.status_code, third.json()["cause"]) == (403, "TOO_MANY_ACCESS_SERVERS")
    assert [r.sas_id for r in await rt.store.registry.access_servers()] == ["sas-1", "sas-2"]


@pytest.mark.parametrize(
    ("sas_id", "body", "cause"),
    [
        ("-leading-dash", {"csc15Uri": GOOD}, "MANDATORY_IE_INCORRECT"),
        ("x" * 65, {"csc15Uri": GOOD}, "MANDATORY_IE_INCORRECT"),
        ("sas%001", {"csc15Uri": GOOD}, None),  # a NUL byte: refused before the route
        ("sas 1", {"csc15Uri": GOOD}, "MANDATORY_IE_INCORRECT"),
        ("sas:1", {"csc15Uri": GOOD}, "MANDATORY_IE_INCORRECT"),
        ("sas-1", {}, "MANDATORY_IE_MISSING"),
        ("sas-1", {"csc15Uri": ""}, None),
        ("sas-1", {"csc15Uri": "http://" + "a" * 600}, None),
        ("sas-1", {"csc15Uri": 7}, None),
        ("sas-1", [GOOD], None),
    ],
)
async def test_bad_input_is_refused_with_a_cause(
    registry: Any, mint: Any, sas_id: str, body: Any, cause: str | None
) -> None:
    rt, http = registry
    response = await http.put(f"{SYNC}/{sas_id}", json=body, headers=sas(mint, "sas-1"))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["cause"] == cause if cause else response.json()["cause"]
    assert await rt.store.registry.access_servers() == []


async def test_only_an_administrator_lists_the_access_servers(registry: Any, mint: Any) -> None:
    _, http = registry
    for token in (sas(mint, "sas-1"), bearer(mint("console-1", "mcx-registry"))):
        response = await http.get(ADMIN, headers=token)
        assert (response.status_code, response.json()["cause"]) == (403, "INSUFFICIENT_SCOPE")
    assert (await http.get(ADMIN)).status_code == 401
