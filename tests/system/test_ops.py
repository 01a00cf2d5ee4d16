"""/healthz is open; /metrics needs a token with asgate-metrics unless metrics_public is set."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from asgate.kernel.settings import Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests.conftest import Provision, TokenFor, bearer


async def test_healthz_reports_the_database(http: httpx.AsyncClient) -> None:
    response = await http.get("/healthz")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/health+json"
    assert response.json()["status"] == "pass"


async def test_healthz_fails_when_the_database_is_gone(http: httpx.AsyncClient, rt: Runtime) -> None:
    # The database answering nothing (disposing the engine under the running roles instead would
    # leak the connections they hold: asyncpg cannot be closed from the garbage collector).
    async def down() -> bool:
        return False

    rt.store.ping = down  # type: ignore[method-assign]
    response = await http.get("/healthz")
    assert response.status_code == 503 and response.json()["status"] == "fail"


async def test_metrics_need_the_metrics_scope(
    http: httpx.AsyncClient, provision: Provision, token_for: TokenFor
) -> None:
    await provision("prom", scopes=("asgate-metrics",))
    await provision("as-1", as_svc_ids=("AS1",))
    assert (await http.get("/metrics")).status_code == 401
    assert (await http.get("/metrics", headers=bearer(await token_for("as-1")))).status_code == 403
    token = await token_for("as-1")
    await http.post("/msgs-asregistration/v1/registrations", json={"asSvcId": "AS1"}, headers=bearer(token))
    response = await http.get("/metrics", headers=bearer(await token_for("prom")))
    assert response.status_code == 200
    text = response.text
    assert 'asgate_http_requests_total{api="msgs-asregistration",method="POST",status="201"} 1.0' in text
    assert 'asgate_msgs_operations_total{operation="register",outcome="ok"} 1.0' in text
    assert "asgate_store_commit_batch_size_bucket" in text
    assert 'asgate_tokens_issued_total{grant_type="client_credentials"}' in text


async def test_metrics_can_be_public(make_settings: Callable[..., Settings]) -> None:
    async with Runtime.open(make_settings(metrics_public=True)) as rt, control_app(rt) as app:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            assert (await http.get("/metrics")).status_code == 200
