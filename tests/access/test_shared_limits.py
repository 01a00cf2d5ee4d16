"""Rate limits shared through Redis (``sas_redis_url``) between access servers running as separate
processes, and what happens when Redis cannot be reached (``sas_redis_fail_open``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.access.conftest import REDIS_URL, delete_matching
from tests.access.split import Split, split_deployment
from tests.access.system import bearer

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]
UNREACHABLE = "redis://127.0.0.1:1/0"  # loopback port 1: connection refused at once
SLOW = {"rate": 0.02, "burst": 6}  # six requests, then one more every 50 s


@pytest.fixture
async def app_id(redis: aioredis.Redis) -> AsyncIterator[str]:
    """An application of its own: the buckets in Redis are keyed by application (tests run in parallel)."""
    app = f"console-{uuid.uuid4().hex[:12]}"
    yield app
    await delete_matching(redis, f"asgate:sas:rl:*{app}*")


async def _call(split: Split, sas: int, app: str, index: int) -> tuple[int, str | None]:
    response = await split.http.get(
        f"{split.data_planes[sas]}/{index}/items", headers=bearer(split.user_token(app))
    )
    return response.status_code, response.json()["cause"] if response.status_code >= 400 else None


async def test_two_access_servers_enforce_one_application_limit_together(tmp_path: Path, app_id: str) -> None:
    async with split_deployment(
        tmp_path, access_servers=2, sas_redis_url=REDIS_URL, sas_redis_fail_open="false"
    ) as split:
        await split.add_app(app_id, rateLimits={"perApplication": SLOW})
        index = (await split.authorize(app_id))["appProfileIndex"]
        # Alternating between the two: each alone would let six through, together they let six.
        answers = [await _call(split, i % 2, app_id, index) for i in range(10)]
    assert answers == [(204, None)] * 6 + [(429, "RATE_LIMITED")] * 4
    assert len(split.recorder.requests) == 6


@pytest.mark.parametrize("fail_open", [True, False], ids=["fail-open", "fail-closed"])
async def test_an_unreachable_redis_admits_or_refuses_as_configured(tmp_path: Path, fail_open: bool) -> None:
    async with split_deployment(
        tmp_path, sas_redis_url=UNREACHABLE, sas_redis_fail_open=str(fail_open).lower()
    ) as split:
        await split.add_app("limited", rateLimits={"perApplication": {"rate": 0.02, "burst": 1}})
        await split.add_app("unlimited")
        limited = (await split.authorize("limited"))["appProfileIndex"]
        unlimited = (await split.authorize("unlimited"))["appProfileIndex"]
        answers = [await _call(split, 0, "limited", limited) for _ in range(3)]
        refused = await split.http.get(
            f"{split.data_planes[0]}/{limited}/items", headers=bearer(split.user_token("limited"))
        )
        # An application without limits has nothing to count in Redis: served either way.
        free = [await _call(split, 0, "unlimited", unlimited) for _ in range(3)]
    assert free == [(204, None)] * 3
    if fail_open:
        assert answers == [(204, None)] * 3 and refused.status_code == 204
        assert len(split.recorder.requests) == 3 + 1 + 3
    else:
        assert answers == [(429, "RATE_LIMITED")] * 3
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert "Redis unreachable" in refused.json()["detail"]
        assert len(split.recorder.requests) == 3
