"""Hashing of client secrets and user passwords: Argon2id (RFC 9106), OWASP's minimum parameters."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


@functools.cache
def _dummy() -> str:
    """Verified when the client does not exist, so that "unknown client" and "wrong secret" take as
    long (computed on first use, not at import)."""
    return _hasher.hash("asgate-dummy-secret")


def generate_secret() -> str:
    """A 256-bit random client secret, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def verify_secret(secret_hash: str | None, secret: str) -> bool:
    try:
        return _hasher.verify(secret_hash or _dummy(), secret) and secret_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _lower_priority() -> None:
    """Argon2 threads run at a lower priority (nice +10) than the event loop's thread, so a flood
    of verifications takes the CPU the loop leaves, not the loop's (Linux: per-thread nice)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


def hash_concurrency() -> int:
    """Argon2 verifications at once by default: the cores this process may use, but one."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 2
    return max(1, cores - 1)


class SecretVerifier:
    """Argon2 verifications in a pool of ``concurrency`` low-priority threads, so that a flood of
    wrong secrets queues behind a bound instead of taking every core from the event loop; and a
    small cache of secrets verified recently, so that a client already known to hold its secret
    is answered without Argon2 (and without waiting behind the flood).

    The cache keeps a keyed hash (HMAC-SHA256 under a per-process random key) of the secret with
    the stored hash it matched: a secret rotation (a new stored hash) misses the cache."""

    def __init__(
        self,
        concurrency: int,
        *,
        ttl: float = 300.0,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._key = secrets.token_bytes(32)
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._verified: OrderedDict[str, tuple[bytes, str, float]] = OrderedDict()

    def _mac(self, name: str, secret: str) -> bytes:
        return hmac.new(self._key, f"{name}\0{secret}".encode(), hashlib.sha256).digest()

    def remembers(self, name: str, secret: str) -> bool:
        """Whether ``secret`` may be a recently verified secret of ``name`` (no I/O; confirm with
        :meth:`recently_verified` against the stored hash)."""
        entry = self._verified.get(name)
        return entry is not None and hmac.compare_digest(entry[0], self._mac(name, secret))

    def recently_verified(self, name: str, secret: str, secret_hash: str | None) -> bool:
        """True when ``secret`` matched ``secret_hash`` for ``name`` within the last ``ttl`` s."""
        entry = self._verified.get(name)
        if entry is None or secret_hash is None:
            return False
        mac, matched, until = entry
        if until <= self._clock() or matched != secret_hash:
            del self._verified[name]
            return False
        return hmac.compare_digest(mac, self._mac(name, secret))

    async def verify(self, name: str, secret_hash: str | None, secret: str, *, remember: bool) -> bool:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.concurrency, "argon2", initializer=_lower_priority)
        ok = await asyncio.get_running_loop().run_in_executor(self._pool, verify_secret, secret_hash, secret)
        if ok and remember and secret_hash is not None:
            self._verified[name] = (self._mac(name, secret), secret_hash, self._clock() + self._ttl)
            self._verified.move_to_end(name)
            if len(self._verified) > self._size:
                self._verified.popitem(last=False)
        return ok

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
