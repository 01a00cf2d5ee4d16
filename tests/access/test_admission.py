"""Overload admission by priority: the pure table with an injected clock, then the asyncio face."""

from __future__ import annotations

import asyncio

import pytest

from asgate.access.admission import Admission, AdmissionControl, State
from asgate.access.priority import Priority, parse_value


def p(text: str | None) -> Priority | None:
    return parse_value(text) if text else None


def full(limit: int = 2, queue: int = 2, reserve: int = 0) -> AdmissionControl:
    control = AdmissionControl(limit, queue, queue_timeout=1.0, reserve=reserve)
    for _ in range(limit):
        assert control.arrive(None if not reserve else p("mcpttq.0"), now=0.0)[0].state is State.ADMITTED
    return control


@pytest.mark.parametrize(
    ("queued", "arriving", "state", "evicted", "queue_after"),
    [
        # No priority: never waits when full.
        ([], None, State.REJECTED, [], []),
        # Queueing namespace: waits while there is room, else is refused.
        ([], "mcpttq.3", State.QUEUED, [], ["mcpttq.3"]),
        (["mcpttq.1", "mcpttq.2"], "mcpttq.9", State.REJECTED, [], ["mcpttq.2", "mcpttq.1"]),
        # Preemption namespace: takes the place of the lowest queued entry below it.
        (["mcpttq.1", "mcpttq.2"], "mcpttp.5", State.QUEUED, ["mcpttq.1"], ["mcpttp.5", "mcpttq.2"]),
        (["mcpttq.7", "mcpttp.6"], "mcpttp.5", State.REJECTED, [], ["mcpttq.7", "mcpttp.6"]),
        (
            ["mcpttq.5", "mcpttq.5"],
            "mcpttp.5",
            State.REJECTED,
            [],
            ["mcpttq.5", "mcpttq.5"],
        ),  # not equal ones
        ([], "mcpttp.0", State.QUEUED, [], ["mcpttp.0"]),
    ],
)
def test_a_full_system(
    queued: list[str], arriving: str | None, state: State, evicted: list[str], queue_after: list[str]
) -> None:
    control = full()
    for text in queued:
        control.arrive(p(text), now=0.0)
    ticket, gone = control.arrive(p(arriving), now=0.0)
    assert ticket.state is state
    assert [str(t.priority) for t in gone] == evicted
    assert all(t.state is State.EVICTED for t in gone)
    assert [str(t.priority) for t in control.queue] == queue_after


def test_freed_slots_go_to_the_highest_priority_first_then_by_arrival() -> None:
    control = full(queue=5)
    order = ["mcpttq.2", "mcpttq.8", "mcpttp.2", "mcpttq.8", "mcpttq.0"]
    tickets = [control.arrive(p(text), now=0.0)[0] for text in order]
    granted = [t for _ in order for t in control.release(now=0.1)]
    assert granted == [tickets[1], tickets[3], tickets[0], tickets[2], tickets[4]]
    assert control.inflight == 2


def test_queued_entries_expire_after_the_queue_timeout() -> None:
    control = full()
    early = control.arrive(p("mcpttq.1"), now=0.0)[0]
    late = control.arrive(p("mcpttq.1"), now=0.5)[0]
    assert control.expire(now=0.9) == []
    assert control.expire(now=1.0) == [early] and early.state is State.EXPIRED
    assert control.release(now=1.6) == [late] and late.state is State.EXPIRED  # expired, not granted
    assert control.inflight == 1


def test_the_reserve_is_kept_for_prioritised_requests() -> None:
    control = AdmissionControl(limit=3, queue_size=0, queue_timeout=1.0, reserve=1)
    assert control.arrive(None, now=0)[0].state is State.ADMITTED
    assert control.arrive(None, now=0)[0].state is State.ADMITTED
    assert control.arrive(None, now=0)[0].state is State.REJECTED  # the last slot is reserved
    assert control.arrive(p("mcpttq.0"), now=0)[0].state is State.ADMITTED
    with pytest.raises(ValueError, match="reserve"):
        AdmissionControl(limit=1, queue_size=0, queue_timeout=1.0, reserve=1)


def test_would_wait_tells_the_fast_path_when_to_go_asynchronous() -> None:
    control = full(queue=1)
    assert control.would_wait(None) is False
    assert control.would_wait(p("mcpttq.1")) is True
    control.arrive(p("mcpttq.1"), now=0.0)
    assert control.would_wait(p("mcpttq.9")) is False  # queue full, no preemption: a rejection
    assert control.would_wait(p("mcpttp.9")) is True  # can evict


async def test_waiters_are_admitted_as_slots_free_up() -> None:
    admission = Admission(limit=1, queue_size=4, queue_timeout=2.0)
    assert admission.try_enter(None) is True
    assert admission.try_enter(None) is False
    assert admission.try_enter(p("mcpttq.1")) is None  # would wait: go asynchronous
    low = asyncio.create_task(admission.enter(p("mcpttq.1")))
    high = asyncio.create_task(admission.enter(p("mcpttq.9")))
    await asyncio.sleep(0.01)
    admission.leave()
    assert await high is True and not low.done()
    admission.leave()
    assert await low is True


async def test_an_evicted_waiter_is_shed_at_once() -> None:
    admission = Admission(limit=1, queue_size=1, queue_timeout=5.0)
    assert admission.try_enter(None)
    low = asyncio.create_task(admission.enter(p("mcpttq.1")))
    await asyncio.sleep(0.01)
    high = asyncio.create_task(admission.enter(p("mcpttp.10")))
    assert await asyncio.wait_for(low, 1) is False
    admission.leave()
    assert await high is True


async def test_a_waiter_is_shed_when_its_wait_is_over() -> None:
    admission = Admission(limit=1, queue_size=1, queue_timeout=0.1)
    assert admission.try_enter(None)
    started = asyncio.get_running_loop().time()
    assert await admission.enter(p("mcpttq.3")) is False
    assert 0.09 < asyncio.get_running_loop().time() - started < 0.5
    assert admission.retry_after == 1


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    admission = Admission(limit=1, queue_size=1, queue_timeout=5.0)
    assert admission.try_enter(None)
    waiter = asyncio.create_task(admission.enter(p("mcpttq.3")))
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert admission.control.queue == []
    admission.leave()
    assert admission.control.inflight == 0
