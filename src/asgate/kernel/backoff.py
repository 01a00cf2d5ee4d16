"""The one retry delay: exponential, capped, with "equal jitter".

Every loop that retries a peer uses it: the registry's notification outbox and CSC-15 pushes, the
access server's snapshot fetch, and the SDK's service agent, notification socket and reconfigurer.
Half of each delay is fixed and half random, so that many failing clients (instances after a
registry restart, receivers of one outbox) do not retry in lockstep, while none retries sooner than
half the nominal delay.
"""

from __future__ import annotations

import random
from collections.abc import Callable

_MAX_DOUBLINGS = 30  # 2**30 times the base is past any cap; a larger exponent would overflow a float


def backoff(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``attempt`` (1, 2, ...): ``base`` doubled per attempt up to
    ``cap``, of which the first half is fixed and the second multiplied by ``rand()`` (in [0, 1))."""
    ceiling: float = min(cap, base * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))
    return ceiling / 2 + rand() * ceiling / 2
