"""The service access server deployed apart from the registry (``asgate serve access``): it keeps
serving from its saved state while the registry is down, across a crash and restart of its own."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from asgate.auth.revocation import REVOCATION_BOUND
from asgate.client import SasKeys, verify_sas_assertion
from tests.access.split import STARTUP, split_deployment
from tests.access.system import bearer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]


async def test_the_access_server_restarts_and_serves_from_its_saved_state_while_the_registry_is_down(
    tmp_path: Path,
) -> None:
    async with split_deployment(tmp_path) as split:
        await split.add_app("console-1")
        profile = await split.authorize("console-1")
        base = profile["serviceLocationInformation"]
        assert base == f"{split.data_planes[0]}/{profile['appProfileIndex']}"
        alice = bearer(split.user_token("console-1"))
        assert (await split.http.get(f"{base}/items", headers=alice)).status_code == 204
        # The access server, a process of its own, signs its assertion with the deployment's shared
        # keys: the service verifies it with the IdM's JWKS, and never sees alice's token.
        seen = split.recorder.requests[0].headers
        assert "authorization" not in seen
        keys = SasKeys(f"{split.registry.url}/oauth2/jwks")
        caller = await verify_sas_assertion(
            seen, keys, issuer=f"{split.registry.url}/sas", audience="GM/recorder"
        )
        await keys.aclose()
        assert (caller.mc_service_id, caller.client_id) == ("alice@mc.example", "console-1")
        # The access server writes what it holds to disk within a second; then both crash.
        state_file = tmp_path / "access-1" / "sas-state.json"
        async with asyncio.timeout(5):
            while not state_file.exists() or profile["appProfileId"] not in state_file.read_text():
                await asyncio.sleep(0.05)
        assert split.registry.kill(signal.SIGKILL) == -signal.SIGKILL
        (sas,) = split.access
        assert sas.kill(signal.SIGKILL) == -signal.SIGKILL
        await asyncio.to_thread(sas.start_again, STARTUP)  # with nowhere to pull a snapshot from
        with pytest.raises(httpx.ConnectError):
            await split.http.get(f"{split.registry.url}/healthz")

        again = await split.http.get(f"{base}/items", headers=alice)
        assert again.status_code == 204
        assert [(r.method, r.path) for r in split.recorder.requests] == [("GET", "/rec/items")] * 2
        assert split.recorder.requests[-1].headers["asgate-mc-service-id"] == "alice@mc.example"
        # ... and still refuses what the profile and the grants do not allow, reaching no backend.
        outside = await split.http.get(f"{base}/admin", headers=alice)
        assert (outside.status_code, outside.json()["cause"]) == (403, "RESOURCE_NOT_AUTHORIZED")
        wrong_method = await split.http.post(f"{base}/items/1", headers=alice)
        assert (wrong_method.status_code, wrong_method.json()["cause"]) == (403, "OPERATION_NOT_AUTHORIZED")
        bob = bearer(split.user_token("console-1", user="bob@mc.example"))
        stranger = await split.http.get(f"{base}/items", headers=bob)
        assert (stranger.status_code, stranger.json()["cause"]) == (403, "USER_NOT_AUTHORIZED")
        other_app = bearer(split.user_token("console-2"))
        foreign = await split.http.get(f"{base}/items", headers=other_app)
        assert (foreign.status_code, foreign.json()["cause"]) == (403, "PROFILE_NOT_AUTHORIZED")
        anonymous = await split.http.get(f"{base}/items")
        assert (anonymous.status_code, anonymous.json()["cause"]) == (401, "INVALID_TOKEN")
        assert len(split.recorder.requests) == 2


async def test_a_revoked_access_token_is_refused_by_a_split_access_server_within_the_bound(
    tmp_path: Path,
) -> None:
    # The access server has a database of its own and two data-plane worker processes: the
    # revocation travels control plane -> access server (pull) -> its database -> the workers.
    async with split_deployment(tmp_path, sas_workers="2") as split:
        await split.add_app("console-1")
        profile = await split.authorize("console-1")
        base = profile["serviceLocationInformation"]
        add = (
            "clients",
            "add",
            "console-1",
            "--public",
            "--scope",
            "openid",
            "--redirect-uri",
            "http://127.0.0.1/cb",
        )
        await asyncio.to_thread(split.registry.cli, *add)
        token = split.user_token("console-1")
        other = split.user_token("console-1")
        for each in (token, other):
            assert (await split.http.get(f"{base}/items", headers=bearer(each))).status_code == 204
        revoke = await split.http.post(
            f"{split.registry.url}/oauth2/revoke", data={"token": token, "client_id": "console-1"}
        )
        assert revoke.status_code == 200
        revoked_at = time.monotonic()
        # Every worker must refuse it: ask until several answers in a row are refusals.
        refusals = 0
        async with asyncio.timeout(REVOCATION_BOUND):
            while refusals < 6:
                answer = await split.http.get(f"{base}/items", headers=bearer(token))
                refusals = refusals + 1 if answer.status_code == 401 else 0
                await asyncio.sleep(0.05)
        assert time.monotonic() - revoked_at <= REVOCATION_BOUND
        assert answer.json()["cause"] == "INVALID_TOKEN" and "revoked" in answer.json()["detail"]
        # The other token of the same application and user still works.
        assert (await split.http.get(f"{base}/items", headers=bearer(other))).status_code == 204
