"""Seed 10.X.4 steps 4-6 on the application's side: for each profile notification, get the
profile and reconfigure the application, once per version and in version order."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from asgate.client.notifications import TRANSIENT
from asgate.domain.registry import ApplicationProfile
from asgate.kernel import logs
from asgate.kernel.backoff import backoff
from asgate.kernel.problem import ProblemError
from asgate.registry.models import ProfileNotification

_log = logs.get("asgate.client.reconfigure")

Fetch = Callable[[str], Awaitable[ApplicationProfile | None]]
Callback = Callable[[Any], Awaitable[None] | None]


class Reconfigurer:
    """Seed 10.X.4 steps 4-6 for every notification: get the profile the notification points to
    (always by its id at the application's own registry, never by following ``appProfileRef``)
    and call ``on_reconfigure(profile)`` at most once per version, with versions only increasing:
    a notification for a version already applied is ignored, and notifications for one profile
    are handled one after the other, in arrival order. When the profile is gone (the
    administrator withdrew it) ``on_withdrawn(profile_id)`` is called instead."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        on_reconfigure: Callback | None = None,
        on_withdrawn: Callback | None = None,
        on_notification: Callback | None = None,
        attempts: int = 5,
        retry_initial: float = 0.5,
        retry_max: float = 8.0,
    ) -> None:
        self._fetch = fetch
        self.on_reconfigure = on_reconfigure
        self.on_withdrawn = on_withdrawn
        self.on_notification = on_notification
        self._attempts = attempts
        self._retry = (retry_initial, retry_max)
        self.versions: dict[str, int] = {}  # profile id -> the version applied
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.idle = asyncio.Event()
        self.idle.set()

    def applied(self, profile: ApplicationProfile) -> None:
        """Record a profile the application has in hand (from an authorization): it is not
        reconfigured again for that version."""
        if profile.version > self.versions.get(profile.app_profile_id, 0):
            self.versions[profile.app_profile_id] = profile.version

    def forget(self, profile_id: str) -> None:
        self.versions.pop(profile_id, None)

    def notified(self, note: ProfileNotification) -> None:
        """Take a notification (from a listener); the work is done in the background."""
        self.idle.clear()
        task = asyncio.create_task(self.handle(note), name=f"reconfigure:{note.app_profile_id}")
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self.idle.set()

    async def handle(self, note: ProfileNotification) -> None:
        profile_id = note.app_profile_id
        await self._call(self.on_notification, note)
        lock = self._locks.setdefault(profile_id, asyncio.Lock())
        async with lock:
            if note.version <= self.versions.get(profile_id, 0):
                _log.debug("stale notification ignored", profile=profile_id, version=note.version)
                return
            # seed 10.X.4 steps 4-5: get application profile (the current one: it may be newer).
            try:
                profile = await self._get(profile_id)
            except (ProblemError, *TRANSIENT) as exc:
                # Not applied: the next notification for this profile tries again.
                _log.warning("cannot get the notified profile", profile=profile_id, error=str(exc))
                return
            if profile is None:
                self.versions[profile_id] = note.version
                await self._call(self.on_withdrawn, profile_id)
                return
            if profile.version <= self.versions.get(profile_id, 0):
                return
            self.versions[profile_id] = profile.version
            # seed 10.X.4 step 6: the application reconfigures itself.
            await self._call(self.on_reconfigure, profile)

    async def _get(self, profile_id: str) -> ApplicationProfile | None:
        for attempt in range(1, self._attempts + 1):
            try:
                return await self._fetch(profile_id)
            except ProblemError as exc:
                if exc.status == 404:
                    return None
                if exc.status < 500 or attempt == self._attempts:
                    raise
            except TRANSIENT:
                if attempt == self._attempts:
                    raise
            await asyncio.sleep(backoff(attempt, *self._retry))
        raise AssertionError("unreachable")

    async def _call(self, callback: Callback | None, argument: Any) -> None:
        if callback is None:
            return
        try:
            result = callback(argument)
            if inspect.isawaitable(result):
                await result
        except Exception:  # noqa: BLE001 - the application's bug must not stop the listener
            _log.exception("application callback failed", callback=getattr(callback, "__name__", "?"))

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until every notification taken so far has been handled."""
        async with asyncio.timeout(timeout):
            await self.idle.wait()

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks))
