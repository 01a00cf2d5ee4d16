"""Background loops stop between units of work: a shutdown lets the unit under way finish, never
cancels a database call half-way, and cancels only a loop still busy after the grace period."""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import time
import warnings
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from sqlalchemy import event

from asgate.kernel import background as module
from asgate.kernel.background import GRACE, Background
from asgate.kernel.settings import Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    with structlog.testing.capture_logs() as entries:
        # A logger of its own: one used before (and cached) would not reach the capture.
        monkeypatch.setattr(module, "_log", structlog.get_logger("asgate.kernel.background"))
        yield entries


async def test_pause_waits_its_time_or_until_woken() -> None:
    background, wake = Background(), asyncio.Event()
    started = time.monotonic()
    assert await background.pause(0.05) is True
    assert time.monotonic() - started >= 0.05
    asyncio.get_running_loop().call_later(0.05, wake.set)
    started = time.monotonic()
    assert await background.pause(10, wake) is True
    assert time.monotonic() - started < 1


async def test_stop_lets_the_unit_of_work_under_way_finish_and_wakes_the_waiting_loops() -> None:
    background, wanted = Background(), asyncio.Event()
    units: list[str] = []

    async def working() -> None:
        while background.running:
            units.append("begin")
            await asyncio.sleep(0.1)  # a database transaction, say
            units.append("end")
            await background.pause(60)

    async def waiting() -> None:
        while await background.pause(None, wanted):
            wanted.clear()

    tasks = [background.spawn(working(), "working"), background.spawn(waiting(), "waiting")]
    await asyncio.sleep(0.02)
    started = time.monotonic()
    await background.stop()
    assert time.monotonic() - started < 1
    assert units == ["begin", "end"]
    assert all(task.done() and not task.cancelled() for task in tasks)
    assert await background.pause(60) is False  # a loop that pauses after the stop returns at once


async def test_stop_cancels_a_loop_still_busy_after_the_grace_and_names_it(
    logged: list[MutableMapping[str, Any]],
) -> None:
    background = Background()

    async def stubborn() -> None:
        while True:  # never looks at stopping
            await asyncio.sleep(0.01)

    task = background.spawn(stubborn(), "stubborn")
    started = time.monotonic()
    await background.stop(grace=0.2)
    assert 0.2 <= time.monotonic() - started < 1
    assert task.cancelled()
    assert [(e["event"], e["task"]) for e in logged] == [
        ("background task still busy after the grace period; cancelled", "stubborn")
    ]


async def test_a_loop_that_fails_is_reported_when_it_fails(logged: list[dict[str, Any]]) -> None:
    background = Background()

    async def failing() -> None:
        raise RuntimeError("bug")

    await asyncio.wait([background.spawn(failing(), "failing")])
    await asyncio.sleep(0)  # the done callback
    assert [(e["event"], e["task"], e["log_level"]) for e in logged] == [
        ("background task failed", "failing", "error")
    ]
    await background.stop()


async def _lifetime(settings: Settings, seconds: float, interrupted: list[str]) -> float:
    """Start every role, let the loops work for ``seconds``, stop them; how long stopping took."""
    async with Runtime.open(settings) as rt:
        # SQLAlchemy throws a connection away when a call on it is cut short (by a cancellation).
        pool = rt.store.engine.sync_engine.pool
        event.listen(pool, "invalidate", lambda _conn, _record, exc: interrupted.append(repr(exc)))
        async with control_app(rt):
            await asyncio.sleep(seconds)
            stopping = time.monotonic()
        return time.monotonic() - stopping


@pytest.mark.parametrize("backend", ["postgresql"])
def test_stopping_the_roles_repeatedly_interrupts_no_database_call(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(
        registry_sweep_interval=0.05,
        # Eight CSC-15 targets that refuse at once: eight loops reading the change log and storing
        # their failures, so that the pool keeps opening connections while the roles start and stop.
        registry_sas_push_urls=[f"http://127.0.0.{n}:1" for n in range(1, 9)],
        registry_retry_base=0.05,
        registry_retry_max=0.2,
    )
    interrupted: list[str] = []
    reported: list[str] = []
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # A loop of its own, closed before collecting: a socket left behind by a cancelled connect
        # is released (and reported) only once its loop lets go of it.
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
            runner.get_loop().set_exception_handler(
                lambda _loop, context: reported.append(context["message"])
            )
            stops = [
                runner.run(_lifetime(settings, random.uniform(0.0, 0.3), interrupted)) for _ in range(20)
            ]
        gc.collect()
    assert interrupted == []
    assert reported == []  # e.g. "Future exception was never retrieved"
    assert [f"{u.exc_type.__name__}: {u.exc_value} in {u.object!r}" for u in unraisable] == []
    assert [f"{w.category.__name__}: {w.message}" for w in caught] == []
    assert max(stops) < GRACE


async def test_a_polling_loop_logs_an_outage_once_and_its_end_once(logged: list[dict[str, Any]]) -> None:
    background = Background()
    answers = [OSError("down"), OSError("down"), OSError("down"), None, None]
    calls = 0

    async def step() -> None:
        nonlocal calls
        calls += 1
        answer = answers.pop(0) if answers else None
        if answer is not None:
            raise answer

    loop = background.spawn(background.every(0.001, step, "reading the thing"), "poller")
    while calls < 6:
        await asyncio.sleep(0.001)
    await background.stop()
    assert loop.done()
    assert [(e["event"], e["log_level"]) for e in logged] == [
        ("reading the thing failed; keeping what is known, retrying", "warning"),
        ("reading the thing works again", "info"),
    ]
