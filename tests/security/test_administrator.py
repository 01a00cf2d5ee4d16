"""Trust boundary: administrator -> registry and MSGin5G Server (mcx-registry-admin, msgs-admin).

What crosses it: the MC service provider's decisions (policies, grants, profile edits, pool
approvals, evictions) and the audit trail. The attacker holds a valid token of this deployment for
some other API (an external application, an MC service, an AS, the CSC-15 client, an MC user) and
tries the administrator's operations. Every operation must answer 401/403 with a cause and change
nothing; what the administrator does is audited under the administrator's name.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from asgate.system.runtime import Runtime
from tests.conftest import Mint, bearer

ADMIN = "/mcx-registry-admin/v1"
OPERATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", f"{ADMIN}/apps", None),
    ("PUT", f"{ADMIN}/apps/console-1", {"allowedServices": [{"serviceType": "GM"}]}),
    ("DELETE", f"{ADMIN}/apps/console-1", None),
    ("GET", f"{ADMIN}/grants", None),
    ("PUT", f"{ADMIN}/grants/console-1/alice@mc.example", {}),
    ("DELETE", f"{ADMIN}/grants/console-1/alice@mc.example", None),
    ("GET", f"{ADMIN}/app-profiles", None),
    ("PUT", f"{ADMIN}/app-profiles/any", {"maxPriority": "mcpttp.15"}),
    ("GET", f"{ADMIN}/services", None),
    ("DELETE", f"{ADMIN}/services/any", None),
    ("GET", f"{ADMIN}/pools", None),
    ("POST", f"{ADMIN}/pools/GM/gms/approve", {}),
    ("PUT", f"{ADMIN}/pools/GM/gms/interface", {"versions": []}),
    ("GET", f"{ADMIN}/outbox", None),
    ("POST", f"{ADMIN}/outbox/1/retry", None),
    ("GET", f"{ADMIN}/audit", None),
    ("GET", "/msgs-admin/v1/registrations", None),
    ("DELETE", "/msgs-admin/v1/registrations/any", None),
]
NOT_ADMIN = ["mcx-registry", "mcx-service-registration", "msgs-asregistration", "mcx-access-profiles"]


@pytest.mark.parametrize("scope", NOT_ADMIN)
async def test_no_other_token_reaches_an_administrator_operation(
    http: httpx.AsyncClient, mint: Mint, rt: Runtime, scope: str
) -> None:
    token = mint("intruder", scope)
    user = mint("console-1", "openid", sub="user-alice", mcptt_id="alice@mc.example")
    audit_before = len(await rt.store.audit.scan())
    for method, path, body in OPERATIONS:
        for caller in (token, user):
            response = await http.request(method, path, json=body, headers=bearer(caller))
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["cause"] == "INSUFFICIENT_SCOPE"
        anonymous = await http.request(method, path, json=body)
        assert (anonymous.status_code, anonymous.json()["cause"]) == (401, "INVALID_TOKEN")
    assert await rt.store.registry.app("console-1") is None
    assert len(await rt.store.audit.scan()) == audit_before  # nothing was done, so nothing to audit


async def test_what_the_administrator_does_is_audited_under_the_administrators_name(
    http: httpx.AsyncClient, mint: Mint, rt: Runtime
) -> None:
    ops = bearer(mint("ops", "mcx-registry-admin"))
    spec = {"allowedServices": [{"serviceType": "GM"}], "maxPriority": "mcpttp.10"}
    assert (await http.put(f"{ADMIN}/apps/console-1", json=spec, headers=ops)).status_code == 201
    assert (
        await http.put(f"{ADMIN}/grants/console-1/alice@mc.example", json={}, headers=ops)
    ).status_code == 201
    events = [(e.actor, e.action, e.outcome) for e in await rt.store.audit.scan()]
    assert ("ops", "app.put", "success") in events or any(
        actor == "ops" and action.startswith("app") for actor, action, _ in events
    ), events
    assert any(actor == "ops" and action.startswith("grant") for actor, action, _ in events), events
