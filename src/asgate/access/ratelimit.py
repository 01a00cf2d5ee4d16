"""Rate limits: token buckets per application and per user, and in-flight caps.

:class:`TokenBuckets` is pure and in memory (``now`` injected), right for one SAS process.
:class:`RedisBuckets` keeps the same buckets in Redis, updated by one atomic Lua script, so several
SAS instances share the counters; when Redis cannot be reached it answers by ``fail_open`` (let
traffic through, or refuse it) and stops trying for ``retry_interval`` seconds so a dead Redis costs
no connect timeout per request.

A request is checked against several buckets at once (``[("app:A", rate), ("user:U", rate)]``): all
of them must hold the tokens, and only then are they all charged, so a refused request costs
nothing anywhere.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_second`` tokens a second, at most ``burst`` saved up."""

    per_second: float
    burst: float

    def __post_init__(self) -> None:
        if self.per_second <= 0 or self.burst < 1:
            raise ValueError("a rate needs per_second > 0 and burst >= 1")


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0  # seconds until the request would be allowed
    degraded: bool = False  # decided without the shared store (Redis unreachable)

    @property
    def retry_after_header(self) -> bytes:
        """RFC 9110 10.2.3: Retry-After in whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after))).encode()


Limit = tuple[str, Rate]


class TokenBuckets:
    """In-memory token buckets keyed by string."""

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, stamp)

    def take(self, limits: Sequence[Limit], now: float, cost: float = 1.0) -> Verdict:
        levels = [self._level(key, rate, now) for key, rate in limits]
        pairs = zip(levels, limits, strict=True)
        wait = max(
            ((cost - tokens) / rate.per_second for tokens, (_, rate) in pairs if tokens < cost), default=0.0
        )
        if wait > 0:
            return Verdict(False, wait)
        if len(self._buckets) >= self.max_keys:
            self._prune()
        for tokens, (key, _) in zip(levels, limits, strict=True):
            self._buckets[key] = (tokens - cost, now)
        return Verdict(True)

    def _level(self, key: str, rate: Rate, now: float) -> float:
        saved = self._buckets.get(key)
        if saved is None:
            return rate.burst
        tokens, stamp = saved
        return min(rate.burst, tokens + max(0.0, now - stamp) * rate.per_second)

    def _prune(self) -> None:
        # Drop the buckets idle longest; a missing bucket is a full one, so this only forgives.
        oldest = sorted(self._buckets.items(), key=lambda item: item[1][1])
        for key, _ in oldest[: max(1, len(oldest) // 10)]:
            del self._buckets[key]


class InflightCaps:
    """At most ``cap`` requests in flight per key (per application), in this process."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def try_acquire(self, key: str, cap: int) -> bool:
        count = self.counts.get(key, 0)
        if count >= cap:
            return False
        self.counts[key] = count + 1
        return True

    def release(self, key: str) -> None:
        count = self.counts.get(key, 0) - 1
        if count > 0:
            self.counts[key] = count
        else:
            self.counts.pop(key, None)


# KEYS: bucket keys. ARGV: cost, then rate and burst per key. Returns {allowed, wait}.
# Time is the Redis server's (TIME), so SAS instances with skewed clocks still agree.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost = tonumber(ARGV[1])
local levels = {}
local wait = 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  local saved = redis.call('HMGET', KEYS[i], 't', 's')
  local tokens = tonumber(saved[1])
  if tokens == nil then
    tokens = burst
  else
    tokens = math.min(burst, tokens + math.max(0, now - tonumber(saved[2])) * rate)
  end
  levels[i] = tokens
  if tokens < cost then wait = math.max(wait, (cost - tokens) / rate) end
end
if wait > 0 then return {0, tostring(wait)} end
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i])
  local burst = tonumber(ARGV[2 * i + 1])
  redis.call('HSET', KEYS[i], 't', tostring(levels[i] - cost), 's', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return {1, '0'}
"""


class RedisBuckets:
    """Token buckets shared through Redis (redis-py asyncio, one Lua script per check).

    In Redis Cluster all keys of one check must hash to one slot: give them a common hash tag,
    e.g. ``{app-1}`` and ``{app-1}:user:alice``.
    """

    def __init__(
        self,
        url: str,
        *,
        fail_open: bool,
        prefix: str = "asgate:sas:rl:",
        timeout: float = 0.25,
        retry_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fail_open = fail_open
        self.prefix = prefix
        self.retry_interval = retry_interval
        self._clock = clock
        self._down_until = 0.0
        self._redis = aioredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._script = self._redis.register_script(_SCRIPT)

    async def take(self, limits: Sequence[Limit], cost: float = 1.0) -> Verdict:
        if self._clock() < self._down_until:
            return self._unreachable()
        keys = [self.prefix + key for key, _ in limits]
        args: list[float] = [cost]
        for _, rate in limits:
            args += [rate.per_second, rate.burst]
        try:
            allowed, wait = await self._script(keys=keys, args=args)
        except (RedisError, OSError):
            self._down_until = self._clock() + self.retry_interval
            return self._unreachable()
        return Verdict(bool(allowed), float(wait))

    def _unreachable(self) -> Verdict:
        return Verdict(self.fail_open, 0.0 if self.fail_open else 1.0, degraded=True)

    async def aclose(self) -> None:
        await self._redis.aclose()
