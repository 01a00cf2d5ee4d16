"""Brute-force protection for the login page and the token endpoint: failed authentications
counted per key in a sliding window.

Keys are a user name or client id and a client address, each with its own limit. While a key is
over its limit the attempt is refused (429) without checking the password or secret, so an
attacker costs the server no Argon2 work either. :class:`LoginThrottle` counts in this process;
:class:`FailureThrottle` shares the counts through Redis when ``idm_redis_url`` is set, so N
IdM processes do not give an attacker N times the limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from asgate.kernel.logs import get as get_logger

_log = get_logger("asgate.idm")


class LoginThrottle:
    def __init__(self, window: float, *, max_keys: int = 100_000) -> None:
        self.window = window
        self._max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, keys: Sequence[tuple[str, int]], now: float) -> float:
        """Seconds until every ``(key, limit)`` is under its limit again; 0 when a try is allowed."""
        wait = 0.0
        for key, limit in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= limit:
                # The try becomes allowed when enough failures leave the window.
                wait = max(wait, times[len(times) - limit] + self.window - now)
        return wait

    def failed(self, keys: Sequence[tuple[str, int]], now: float) -> None:
        for key, limit in keys:
            times = self._recent(key, now)
            if times is None:
                times = self._failures[key] = deque()
                if len(self._failures) > self._max_keys:
                    self._failures.popitem(last=False)  # forget the stalest key, bounding memory
            self._failures.move_to_end(key)
            times.append(now)
            while len(times) > limit:  # older failures no longer decide anything
                times.popleft()

    def succeeded(self, key: str) -> None:
        """A correct password clears the user's count (not the address's: one success must not
        let an address that tries many user names start over)."""
        self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times


# Sliding window in a sorted set per key (scores: failure times). KEYS[1]; ARGV: now, window,
# limit, and "1" to record a failure. Returns the seconds to wait (0: a try is allowed).
_SCRIPT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[5])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(limit + 1))
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return '0'
end
local n = redis.call('ZCARD', KEYS[1])
if n < limit then return '0' end
local oldest = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""


class FailureThrottle:
    """Failed authentications per key, shared by every IdM process through Redis when a URL is
    given, else counted in this process (:class:`LoginThrottle`). When Redis cannot be reached the
    process counts on its own until it can again: an attacker gains at most N times the limit
    with N processes, never an unlimited run."""

    def __init__(
        self,
        window: float,
        *,
        redis_url: str | None = None,
        prefix: str = "asgate:idm:fail:",
        timeout: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.local = LoginThrottle(window)
        self._clock = clock
        self._wall = wall_clock
        self._prefix = prefix
        self._redis: aioredis.Redis | None = None
        if redis_url:
            self._redis = aioredis.Redis.from_url(
                redis_url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            self._script = self._redis.register_script(_SCRIPT)

    async def retry_after(self, keys: Sequence[tuple[str, int]]) -> float:
        """Seconds until every ``(key, limit)`` is under its limit again; 0 when a try is allowed."""
        wait = self.local.retry_after(keys, self._clock())
        for key, limit in keys if self._redis is not None else ():
            answer = await self._run(key, limit, record=False)
            wait = max(wait, float(answer or 0))
        return wait

    async def failed(self, keys: Sequence[tuple[str, int]]) -> None:
        if self._redis is None or not all([await self._run(k, n, record=True) for k, n in keys]):
            self.local.failed(keys, self._clock())

    async def succeeded(self, key: str) -> None:
        self.local.succeeded(key)
        if self._redis is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.delete(self._prefix + key)

    async def _run(self, key: str, limit: int, *, record: bool) -> str | None:
        """The script's answer, or None when Redis is unreachable (then this process counts)."""
        now = self._wall()
        args = [now, self.window, limit, "1" if record else "0", f"{now}:{secrets.token_hex(4)}"]
        try:
            answer = await self._script(keys=[self._prefix + key], args=args)
        except (RedisError, OSError):
            _log.warning("the IdM's failure counters cannot reach Redis; counting in this process")
            return None
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


class KeyedLocks:
    """One attempt at a time per key in this process, so that concurrent attempts cannot all pass
    the throttle's check before the first failure is counted (the limit would be exceeded by the
    concurrency). Keys are always taken in the caller's order (client, then source): no cycles."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, keys: Sequence[str]) -> AsyncIterator[None]:
        registered: list[str] = []
        acquired: list[asyncio.Lock] = []
        try:
            for key in keys:
                lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
                self._locks[key] = (lock, users + 1)
                registered.append(key)
                await lock.acquire()
                acquired.append(lock)
            yield
        finally:
            for lock in reversed(acquired):
                lock.release()
            for key in registered:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
