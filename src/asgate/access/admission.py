"""Overload admission control by communication priority (pure core + a small asyncio wrapper).

A global limit of requests in flight. While there is room every request is admitted (``reserve``
slots at the top are kept for requests that carry a priority). When full:

| request                  | queue has room | queue full                                      |
|--------------------------|----------------|-------------------------------------------------|
| no Resource-Priority     | rejected       | rejected                                        |
| ``mcpttq.N`` (queueing)  | queued         | rejected                                        |
| ``mcpttp.N`` (preemption)| queued         | evicts the lowest queued entry below N, queued; |
|                          |                | else rejected                                   |

The queue is served highest level first, first come first served within a level; an entry that
waits longer than ``queue_timeout`` is shed. A rejected, evicted or expired request is answered
503 with Retry-After by the caller. Running requests are never pre-empted: RFC 8101's preemption
here means taking the place of queued, not yet started, work.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from asgate.access.priority import Priority


class State(Enum):
    ADMITTED = "admitted"
    QUEUED = "queued"
    REJECTED = "rejected"  # never admitted: no room
    EVICTED = "evicted"  # was queued, pre-empted by a higher priority
    EXPIRED = "expired"  # was queued longer than queue_timeout
    CANCELLED = "cancelled"  # the waiter went away


@dataclass(eq=False, slots=True)
class Ticket:
    priority: Priority | None
    seq: int
    deadline: float
    state: State = State.QUEUED
    key: tuple[int, int] = field(init=False)

    def __post_init__(self) -> None:
        rank = self.priority.rank if self.priority is not None else 0
        self.key = (-rank, self.seq)  # sorts highest priority first, then arrival

    @property
    def rank(self) -> int:
        return -self.key[0]

    @property
    def admitted(self) -> bool:
        return self.state is State.ADMITTED


class AdmissionControl:
    """The pure state machine; every call takes ``now``."""

    def __init__(self, limit: int, queue_size: int, queue_timeout: float, reserve: int = 0) -> None:
        if not 0 <= reserve < limit:
            raise ValueError("reserve must be at least 0 and less than limit")
        self.limit = limit
        self.queue_size = queue_size
        self.queue_timeout = queue_timeout
        self.reserve = reserve
        self.inflight = 0
        self.queue: list[Ticket] = []  # sorted by Ticket.key
        self._seq = itertools.count()

    def arrive(
        self, priority: Priority | None, now: float, *, may_wait: bool = True
    ) -> tuple[Ticket, list[Ticket]]:
        """Decide about a new request: the ticket (ADMITTED, QUEUED or REJECTED) and the queued
        tickets it evicted. With ``may_wait=False`` a request that would be queued is REJECTED
        instead and nothing changes (``would_wait`` tells the two apart)."""
        ticket = Ticket(priority, next(self._seq), now + self.queue_timeout)
        room = self.limit if priority is not None else self.limit - self.reserve
        if self.inflight < room and not self.queue:
            self.inflight += 1
            ticket.state = State.ADMITTED
            return ticket, []
        victim = self._victim(ticket)
        if priority is None or (len(self.queue) >= self.queue_size and victim is None) or not may_wait:
            ticket.state = State.REJECTED
            return ticket, []
        evicted = []
        if len(self.queue) >= self.queue_size and victim is not None:
            self.queue.remove(victim)
            victim.state = State.EVICTED
            evicted.append(victim)
        bisect.insort(self.queue, ticket, key=lambda t: t.key)
        return ticket, evicted

    def would_wait(self, priority: Priority | None) -> bool:
        """Whether ``arrive`` would queue (rather than admit or reject) this request now."""
        room = self.limit if priority is not None else self.limit - self.reserve
        if priority is None or (self.inflight < room and not self.queue):
            return False
        if len(self.queue) < self.queue_size:
            return True
        return priority.preemptive and self._victim_rank_below(priority.rank)

    def _victim(self, ticket: Ticket) -> Ticket | None:
        # RFC 8101: only the preemption namespace displaces others, and only lower priorities.
        if ticket.priority is None or not ticket.priority.preemptive or not self.queue:
            return None
        lowest = self.queue[-1]  # lowest rank, latest arrival among them
        return lowest if lowest.rank < ticket.rank else None

    def _victim_rank_below(self, rank: int) -> bool:
        return False if not self.queue else self.queue[-1].rank < rank

    def release(self, now: float) -> list[Ticket]:
        """A request finished; the queued tickets that now get its slot (ADMITTED)."""
        self.inflight -= 1
        expired = self.expire(now)
        admitted = []
        while self.queue and self.inflight < self.limit:
            ticket = self.queue.pop(0)
            ticket.state = State.ADMITTED
            self.inflight += 1
            admitted.append(ticket)
        return admitted + expired

    def expire(self, now: float) -> list[Ticket]:
        """Queued tickets whose deadline has passed (EXPIRED)."""
        if not self.queue or min(t.deadline for t in self.queue) > now:
            return []
        expired = [t for t in self.queue if t.deadline <= now]
        self.queue = [t for t in self.queue if t.deadline > now]
        for ticket in expired:
            ticket.state = State.EXPIRED
        return expired

    def cancel(self, ticket: Ticket) -> None:
        if ticket.state is State.QUEUED:
            self.queue.remove(ticket)
            ticket.state = State.CANCELLED


class Admission:
    """The asyncio face of :class:`AdmissionControl` for a gate.

    ``try_enter`` is the synchronous fast path (for ``admit_nowait``): True admitted, False
    rejected, None when the request would have to wait (then call ``enter`` from ``admit``).
    Every admitted request calls ``leave`` exactly once (``Admit.on_done``).
    """

    def __init__(
        self,
        limit: int,
        queue_size: int,
        queue_timeout: float,
        reserve: int = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.control = AdmissionControl(limit, queue_size, queue_timeout, reserve)
        self._clock = clock
        self._waiters: dict[Ticket, asyncio.Future[bool]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.retry_after = max(1, math.ceil(queue_timeout))  # seconds, for the 503

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def try_enter(self, priority: Priority | None) -> bool | None:
        if self.control.would_wait(priority):
            return None
        ticket, _ = self.control.arrive(priority, self._now(), may_wait=False)
        return ticket.state is State.ADMITTED

    async def enter(self, priority: Priority | None) -> bool:
        """Wait (bounded) for a slot: True admitted, False shed (answer 503 + Retry-After)."""
        ticket, evicted = self.control.arrive(priority, self._now())
        self._settle(evicted)
        if ticket.state is not State.QUEUED:
            return ticket.state is State.ADMITTED
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = future
        self._arm()
        try:
            return await future
        except asyncio.CancelledError:
            self._waiters.pop(ticket, None)
            if ticket.admitted:  # granted just as the waiter was cancelled: pass the slot on
                self.leave()
            self.control.cancel(ticket)
            raise

    def leave(self) -> None:
        self._settle(self.control.release(self._now()))

    def _settle(self, tickets: list[Ticket]) -> None:
        for ticket in tickets:
            future = self._waiters.pop(ticket, None)
            if future is not None and not future.done():
                future.set_result(ticket.state is State.ADMITTED)
            elif ticket.state is State.ADMITTED:
                self.leave()  # its waiter is gone: give the slot on

    def _arm(self) -> None:
        if self._timer is None and self.control.queue:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(
                min(t.deadline for t in self.control.queue) - self._now(), self._expire
            )

    def _expire(self) -> None:
        self._timer = None
        self._settle(self.control.expire(self._now()))
        self._arm()
