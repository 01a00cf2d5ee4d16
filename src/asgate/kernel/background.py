"""The background loops of a role, stopped between units of work rather than in the middle of one.

Cancelling a task inside a database call abandons the call half-way: the pool throws the connection
away, and SQLAlchemy does not shield opening or closing an asyncpg connection from a cancellation
(sqlalchemy/sqlalchemy#8145, #6652, #12099), which can leak its socket. So a loop checks
``stopping`` between units of work and waits through :meth:`Background.pause`, which returns at
once when the role stops; :meth:`Background.stop` cancels only a loop still busy after the grace
period (an HTTP request to a slow peer, say), and names it in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from asgate.kernel import logs

_log = logs.get("asgate.kernel.background")
GRACE = 5.0  # seconds a loop has to finish its unit of work when the role stops
_UNWIND = 1.0  # seconds a cancelled loop has to unwind


class Background:
    """The loops of one role: ``spawn`` them at start, ``await stop()`` at shutdown."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._waiting: list[asyncio.Event] = []

    @property
    def running(self) -> bool:
        return not self.stopping.is_set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report)
        self._tasks.append(task)
        return task

    async def pause(self, seconds: float | None, wake: asyncio.Event | None = None) -> bool:
        """Wait ``seconds`` (``None``: no limit), less if ``wake`` is set; False once stopping.

        A loop waits here between units of work: ``while await background.pause(interval): ...``.
        """
        if self.stopping.is_set():
            return False
        event = self.stopping if wake is None else wake
        self._waiting.append(event)  # stop() sets it, so that a loop waiting for a wake-up sees it
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await event.wait()
        finally:
            self._waiting.remove(event)
        return not self.stopping.is_set()

    async def every(self, seconds: float, step: Callable[[], Awaitable[object]], what: str) -> None:
        """Run ``step`` every ``seconds`` until the role stops. A failure (the store or a peer away
        for a while) keeps what the process knows and retries; it is logged once per outage, and
        the recovery once, not every time."""
        failing = False
        while True:
            try:
                await step()
            except Exception as exc:  # noqa: BLE001 - a loop must outlive an outage of what it reads
                if not failing:
                    _log.warning(f"{what} failed; keeping what is known, retrying", error=str(exc)[:200])
                failing = True
            else:
                if failing:
                    _log.info(f"{what} works again")
                failing = False
            if not await self.pause(seconds):
                return

    async def stop(self, grace: float = GRACE) -> None:
        """Let every loop finish its unit of work and return; cancel those still busy after ``grace``."""
        self.stopping.set()
        for event in self._waiting:
            event.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, stuck = await asyncio.wait(tasks, timeout=grace)
        for task in stuck:
            _log.warning("background task still busy after the grace period; cancelled", task=task.get_name())
            task.cancel()
        if stuck:
            await asyncio.wait(stuck, timeout=_UNWIND)


def _report(task: asyncio.Task[None]) -> None:
    """A loop that ends with an exception is a bug: say so now, not when the task is collected."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        _log.error("background task failed", task=task.get_name(), exc_info=exc)
