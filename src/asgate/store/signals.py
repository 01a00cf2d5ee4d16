"""Wake-ups across processes: a committed write tells every process sharing the database at once.

Several asgate processes may run over one PostgreSQL. A write that another process must act on (a
notification queued in the outbox, a change appended to the CSC-15 log) calls :func:`signal` in its
own transaction: ``pg_notify``, which PostgreSQL delivers only when that transaction commits (and
drops with a rolled-back savepoint), so a listener never acts before the data is visible. Each
process follows the signals on a dedicated connection (:class:`Listener`, ``LISTEN``) and wakes its
loops (the notifier, the view's watcher) within milliseconds instead of at their next poll.

A signal is only a hint: it carries a topic, never data, and a process that missed some (its
listening connection dropped, PostgreSQL restarted) loses nothing, because every loop still polls
the database, and the listener wakes them all again once it is back. The channel is named after the
schema (``asgate_<schema>``), so that deployments or tests sharing one database in separate schemas
do not wake each other. On SQLite there is nothing to listen to: a process's own writes wake its
loops directly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

from asgate.kernel import logs
from asgate.kernel.background import Background
from asgate.kernel.backoff import backoff

_log = logs.get("asgate.store.signals")

OUTBOX = "outbox"  # notifications were queued or made due
CHANGES = "changes"  # the CSC-15 change log grew
RECONNECTED = "reconnected"  # the listener is (back) on: signals may have been missed meanwhile
TOPICS = frozenset({OUTBOX, CHANGES, RECONNECTED})

# Identifiers are cut at 63 bytes (NAMEDATALEN - 1); both sides cut the same way.
_CHANNEL = "left('asgate_' || current_schema(), 63)"
_NOTIFY = text(f"SELECT pg_notify({_CHANNEL}, :topic)")


def signal(conn: Connection, topic: str) -> None:
    """Tell the other processes, when this transaction commits, that ``topic`` has news."""
    if conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"topic": topic})


class Listener:
    """Follows the signals on a dedicated PostgreSQL connection and calls ``on_signal(topic)`` for
    each (and with :data:`RECONNECTED` each time it starts listening). Reconnects with backoff when
    the connection drops; checks it every ``keepalive`` seconds."""

    def __init__(
        self,
        url: URL,
        schema: str | None,
        on_signal: Callable[[str], None],
        *,
        retry_base: float = 0.1,
        retry_max: float = 5.0,
        keepalive: float = 10.0,
    ) -> None:
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._server_settings = {"search_path": schema} if schema else {}
        self._on_signal = on_signal
        self._retry = (retry_base, retry_max)
        self._keepalive = keepalive
        self.listening = asyncio.Event()  # set while the connection listens (for health and tests)
        self.channel: str | None = None
        self.server_pid: int | None = None  # the listening connection's backend

    async def run(self, background: Background) -> None:
        failures = 0
        while background.running:
            try:
                conn = await asyncpg.connect(self._dsn, server_settings=self._server_settings, timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                failures += 1
                delay = backoff(failures, *self._retry)
                if failures == 1 or failures % 20 == 0:
                    _log.warning(
                        "cannot listen for signals; polling meanwhile", error=str(exc), retry_in=delay
                    )
                await background.pause(delay)
                continue
            try:
                failures = 0
                await self._listen(conn, background)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                _log.warning("signal connection lost; reconnecting", error=str(exc))
                failures = 1
                await background.pause(backoff(failures, *self._retry))
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    async def _listen(self, conn: Any, background: Background) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        self.channel = str(await conn.fetchval(f"SELECT {_CHANNEL}"))
        self.server_pid = conn.get_server_pid()
        await conn.add_listener(self.channel, self._received)
        self.listening.set()
        self._on_signal(RECONNECTED)  # whatever was committed while nobody listened
        while await background.pause(self._keepalive, lost) and not lost.is_set():
            await asyncio.wait_for(conn.fetchval("SELECT 1"), 5)
        if lost.is_set() and background.running:
            raise ConnectionError("the server closed the connection")

    def _received(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload in TOPICS:
            self._on_signal(payload)
