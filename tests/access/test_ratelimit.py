"""Token buckets (pure, injected clock), in-flight caps, and the Redis-shared buckets (real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from asgate.access.ratelimit import InflightCaps, Rate, RedisBuckets, TokenBuckets
from tests.access.conftest import REDIS_URL, delete_matching

APP = Rate(per_second=10, burst=3)
USER = Rate(per_second=1, burst=2)


@pytest.mark.parametrize(
    ("times", "allowed"),
    [
        ([0, 0, 0, 0], [True, True, True, False]),  # the burst, then empty
        ([0, 0, 0, 0.1], [True, True, True, True]),  # 10/s refills one token in 0.1 s
        ([0, 0, 0, 0.05, 0.1], [True, True, True, False, True]),
        ([0, 0, 0, 10, 10, 10, 10], [True, True, True, True, True, True, False]),  # refill stops at the burst
    ],
)
def test_one_bucket(times: list[float], allowed: list[bool]) -> None:
    buckets = TokenBuckets()
    assert [buckets.take([("app:a", APP)], now=t).allowed for t in times] == allowed


def test_a_refusal_says_when_to_come_back() -> None:
    buckets = TokenBuckets()
    for _ in range(3):
        buckets.take([("app:a", APP)], now=0.0)
    verdict = buckets.take([("app:a", APP)], now=0.0)
    assert verdict.allowed is False and verdict.retry_after == pytest.approx(0.1)
    assert verdict.retry_after_header == b"1"


def test_every_bucket_must_allow_and_a_refusal_charges_none() -> None:
    buckets = TokenBuckets()
    limits = [("app:a", APP), ("user:alice", USER)]
    assert [buckets.take(limits, now=0.0).allowed for _ in range(3)] == [True, True, False]  # user's burst
    # The refused request did not take the application's third token: bob still gets it.
    assert buckets.take([("app:a", APP), ("user:bob", USER)], now=0.0).allowed
    assert not buckets.take([("app:a", APP), ("user:carol", USER)], now=0.0).allowed  # app empty now


def test_applications_do_not_share_buckets() -> None:
    buckets = TokenBuckets()
    for _ in range(3):
        buckets.take([("app:a", APP)], now=0.0)
    assert buckets.take([("app:b", APP)], now=0.0).allowed


def test_the_key_table_stays_bounded() -> None:
    buckets = TokenBuckets(max_keys=100)
    for i in range(1000):
        buckets.take([(f"user:{i}", USER)], now=float(i))
    assert len(buckets._buckets) <= 100  # noqa: SLF001


def test_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="per_second"):
        Rate(per_second=0, burst=1)


def test_inflight_caps_per_application() -> None:
    caps = InflightCaps()
    assert [caps.try_acquire("a", 2) for _ in range(3)] == [True, True, False]
    assert caps.try_acquire("b", 2)
    caps.release("a")
    assert caps.try_acquire("a", 2)
    caps.release("a")
    caps.release("a")
    assert caps.counts == {"b": 1}


# ---------------------------------------------------------------- Redis, for real


@pytest.fixture
async def redis_prefix(redis: aioredis.Redis) -> AsyncIterator[str]:
    prefix = f"asgate:test:{uuid.uuid4().hex}:"
    yield prefix
    await delete_matching(redis, prefix + "*")


async def test_two_sas_instances_share_the_buckets(redis_prefix: str) -> None:
    first = RedisBuckets(REDIS_URL, fail_open=False, prefix=redis_prefix)
    second = RedisBuckets(REDIS_URL, fail_open=False, prefix=redis_prefix)
    slow = Rate(per_second=0.01, burst=3)
    try:
        assert (await first.take([("app:a", slow)])).allowed
        assert (await second.take([("app:a", slow)])).allowed
        assert (await first.take([("app:a", slow)])).allowed
        refused = await second.take([("app:a", slow)])
        assert not refused.allowed and 50 < refused.retry_after <= 100 and not refused.degraded
        assert (await second.take([("app:b", slow)])).allowed
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_checks_all_buckets_atomically(redis_prefix: str) -> None:
    buckets = RedisBuckets(REDIS_URL, fail_open=False, prefix=redis_prefix)
    app, user = Rate(0.01, 3), Rate(0.01, 1)
    try:
        assert (await buckets.take([("app:a", app), ("user:alice", user)])).allowed
        assert not (await buckets.take([("app:a", app), ("user:alice", user)])).allowed
        assert (await buckets.take([("app:a", app), ("user:bob", user)])).allowed
        assert (await buckets.take([("app:a", app), ("user:carol", user)])).allowed
        assert not (await buckets.take([("app:a", app), ("user:dave", user)])).allowed
    finally:
        await buckets.aclose()


async def test_redis_buckets_refill_over_time(redis_prefix: str) -> None:
    buckets = RedisBuckets(REDIS_URL, fail_open=False, prefix=redis_prefix)
    fast = Rate(per_second=20, burst=1)
    try:
        assert (await buckets.take([("app:a", fast)])).allowed
        refused = await buckets.take([("app:a", fast)])
        assert not refused.allowed
        await asyncio.sleep(refused.retry_after + 0.02)
        assert (await buckets.take([("app:a", fast)])).allowed
    finally:
        await buckets.aclose()


@pytest.mark.parametrize("fail_open", [True, False])
async def test_an_unreachable_redis_fails_open_or_closed_as_configured(fail_open: bool) -> None:
    # Port 1 on loopback refuses connections: a real, immediate connection failure.
    now = [0.0]
    buckets = RedisBuckets(
        "redis://127.0.0.1:1/0", fail_open=fail_open, retry_interval=5.0, clock=lambda: now[0]
    )
    try:
        verdict = await buckets.take([("app:a", APP)])
        assert verdict.allowed is fail_open and verdict.degraded
        now[0] = 1.0  # within retry_interval: answered without trying Redis again
        assert (await buckets.take([("app:a", APP)])).allowed is fail_open
    finally:
        await buckets.aclose()
