"""Login brute-force protection: failures per key in a sliding window."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from asgate.idm.throttle import FailureThrottle, LoginThrottle
from tests.access.conftest import REDIS_URL, delete_matching, redis  # noqa: F401 - fixture

USER = ("user:alice", 3)
SOURCE = ("source:10.0.0.1", 5)


@pytest.mark.parametrize(
    ("failures", "at", "wait"),
    [
        ([], 0.0, 0.0),
        ([0.0, 1.0], 2.0, 0.0),  # under the limit
        ([0.0, 1.0, 2.0], 3.0, 57.0),  # at the limit: wait until the oldest leaves the window
        ([0.0, 1.0, 2.0], 60.0, 0.0),  # it has left
        ([0.0, 1.0, 2.0, 30.0], 60.5, 0.5),  # the window slides: 1.0 leaves at 61
        ([0.0, 10.0, 20.0], 59.0, 1.0),
        ([0.0, 10.0, 20.0], 61.0, 0.0),  # 0.0 has left: two failures remain
    ],
)
def test_sliding_window(failures: list[float], at: float, wait: float) -> None:
    throttle = LoginThrottle(60.0)
    for t in failures:
        throttle.failed([USER], t)
    assert throttle.retry_after([USER], at) == pytest.approx(wait)


def test_each_key_has_its_own_limit_and_the_longest_wait_wins() -> None:
    throttle = LoginThrottle(60.0)
    for t in range(5):
        throttle.failed([(f"user:u{t}", 3), SOURCE], float(t))
    # No single user is over its limit, but the address is.
    assert throttle.retry_after([("user:u9", 3)], 5.0) == 0
    assert throttle.retry_after([("user:u9", 3), SOURCE], 5.0) == pytest.approx(55.0)


def test_success_clears_the_user_but_not_the_address() -> None:
    throttle = LoginThrottle(60.0)
    for t in range(5):
        throttle.failed([USER, SOURCE], float(t))
    throttle.succeeded(USER[0])
    assert throttle.retry_after([USER], 5.0) == 0
    assert throttle.retry_after([SOURCE], 5.0) > 0


def test_memory_is_bounded_by_forgetting_the_stalest_keys() -> None:
    throttle = LoginThrottle(60.0, max_keys=100)
    throttle.failed([("user:first", 1)], 0.0)
    for i in range(200):
        throttle.failed([(f"user:{i}", 1)], 1.0)
    assert throttle.retry_after([("user:first", 1)], 2.0) == 0  # forgotten
    assert throttle.retry_after([("user:199", 1)], 2.0) > 0
    assert len(throttle._failures) <= 100


# ---------------------------------------------------------------- shared through Redis


def _clock(start: float = 1000.0) -> list[float]:
    return [start]


async def test_failure_counts_are_shared_through_redis(redis: aioredis.Redis) -> None:  # noqa: F811
    prefix = f"asgate:test:{uuid.uuid4().hex}:"
    now = _clock()
    one, two = (
        FailureThrottle(60.0, redis_url=REDIS_URL, prefix=prefix, wall_clock=lambda: now[0]) for _ in range(2)
    )
    try:
        for t in (0.0, 1.0, 2.0):
            now[0] = 1000.0 + t
            await (one if t % 2 else two).failed([USER])
        now[0] = 1003.0
        # Process one counted only one failure itself; Redis has all three.
        assert await one.retry_after([USER]) == pytest.approx(57.0)
        assert await two.retry_after([SOURCE]) == 0.0
        now[0] = 1061.0  # the window slides: 1.0 leaves at 61
        assert await one.retry_after([USER]) == 0.0
        now[0] = 1003.0
        await two.succeeded(USER[0])  # a correct password clears the user's count everywhere
        assert await one.retry_after([USER]) == 0.0
    finally:
        await delete_matching(redis, prefix + "*")
        await one.aclose()
        await two.aclose()


async def test_without_redis_each_process_still_counts() -> None:
    now = _clock()
    throttle = FailureThrottle(60.0, redis_url="redis://127.0.0.1:1/0", clock=lambda: now[0])
    try:
        for _ in range(3):
            await throttle.failed([USER])
        assert await throttle.retry_after([USER]) == pytest.approx(60.0)
    finally:
        await throttle.aclose()
