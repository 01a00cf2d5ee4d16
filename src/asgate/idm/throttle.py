"""Brute-force protection for the login page: failed logins counted per key in a sliding window.

Keys are a user name and a client address, each with its own limit. While a key is over its limit
the login is refused (429) without checking the password, so an attacker costs the server no
Argon2 work either. State is per process: with N IdM processes an attacker gets at most N times
the limit (documented in docs/operations.md).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence


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
