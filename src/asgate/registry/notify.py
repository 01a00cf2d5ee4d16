"""Notify application profile (seed 10.X.4 steps 2-3, Tables 10.X.2.7/8) through a durable outbox.

Notifications are rows written in the same transaction as the profile change. This worker leases
the due ones (so that several registry processes never send one twice: ``tx.outbox.claim_due``),
POSTs the pointer to the application's notificationDestination (or sends it on the application's
WebSocket), and marks it delivered on a 2xx. Failures are retried with exponential backoff and
jitter, forever (the administrator sees attempts and the last error, and can retry at once); a
newer version of a profile supersedes an undelivered older one. Nothing is lost across restarts: a
lease simply expires, and another process sends what a dead one had leased.

The loop runs at once while there is work, when woken (a change in this process, an application's
WebSocket connecting, or another process's commit signalled through the database,
:mod:`asgate.store.signals`), else every ``poll`` seconds. A WebSocket notification is sent by the
process holding the application's socket, whichever process committed the change.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import aiohttp
from yarl import URL

from asgate.kernel import logs
from asgate.kernel.background import Background
from asgate.kernel.backoff import backoff
from asgate.kernel.resolver import AddressRefused
from asgate.kernel.uripolicy import UriPolicy
from asgate.registry.hub import NotificationHub
from asgate.registry.models import ProfileNotification
from asgate.store import Store
from asgate.store import registry as db
from asgate.store.tx import Tx

_log = logs.get("asgate.registry.notify")


class Notifier:
    def __init__(
        self,
        store: Store,
        policy: UriPolicy,
        session: Callable[[int], aiohttp.ClientSession],
        hub: NotificationHub,
        api_root: str,
        *,
        concurrency: int = 64,
        timeout: float = 5.0,
        retry_base: float = 1.0,
        retry_max: float = 300.0,
        lease: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_delivery: Callable[[str, db.Delivery], None] | None = None,
    ) -> None:
        self._store = store
        self._policy = policy
        self._session = session
        self._http: aiohttp.ClientSession | None = None
        self._hub = hub
        self._api_root = api_root
        self._limit = concurrency
        self._timeout = timeout
        self._retry = (retry_base, retry_max)
        self._lease = lease
        self._clock = clock
        self._on_delivery = on_delivery
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self, background: Background, poll: float = 1.0) -> None:
        """Deliver rounds until the role stops: at once while there is work, else on a wake-up or
        every ``poll`` seconds."""
        # aiohttp rather than the runtime's httpx client: a fan-out to 10,000 applications is this
        # loop's whole job, and httpx POSTs at ~500/s here where aiohttp does ~10,000/s.
        async with self._session(self._limit) as self._http:
            await self._rounds(background, poll)
        self._http = None

    async def _rounds(self, background: Background, poll: float) -> None:
        while background.running:
            self._wake.clear()  # before the round: a wake-up during it makes the next one start at once
            try:
                sent = await self.round()
            except Exception:  # noqa: BLE001 - a worker must outlive a bad round (database restart...)
                _log.exception("notification round failed")
                sent = 0
            if sent == 0:
                await background.pause(poll, self._wake)

    async def round(self) -> int:
        """Deliver the notifications due now (up to the concurrency limit); how many were tried."""
        now = self._clock()
        due = await self._store.write(
            lambda tx: tx.outbox.claim_due(now, self._lease, self._limit, self._hub.connected())
        )
        if due:
            errors = await asyncio.gather(*(self._deliver(d) for d in due))
            # Every outcome of the round in one transaction (the leases outlast the send timeout).
            now = self._clock()
            delivered = [d.id for d, error in zip(due, errors, strict=True) if error is None]
            failed = [
                (d.id, now + backoff(d.attempts + 1, *self._retry), error)
                for d, error in zip(due, errors, strict=True)
                if error is not None
            ]
            await self._store.write(lambda tx: _outcomes(tx, delivered=delivered, failed=failed, now=now))
            if self._on_delivery is not None:
                for d, error in zip(due, errors, strict=True):
                    self._on_delivery("delivered" if error is None else "failed", d)
        return len(due)

    async def _deliver(self, delivery: db.Delivery) -> str | None:
        """Send one notification; None when it was acknowledged, else why not."""
        body = ProfileNotification(
            app_profile_id=delivery.app_profile_id,
            app_profile_ref=f"{self._api_root}/mcx-registry/v1/app-profiles/{delivery.app_profile_id}",
            version=delivery.version,
            notification_id=delivery.id,
        ).dump()
        if delivery.destination == "websocket":
            error = await self._hub.deliver(delivery.app_id, delivery.id, body, self._timeout)
        else:
            error = await self._post(delivery.destination, body)
        if error is not None:
            _log.info(
                "notification not delivered",
                id=delivery.id,
                app=delivery.app_id,
                error=error,
                attempt=delivery.attempts + 1,
            )
        return error

    async def _post(self, url: str, body: dict[str, object]) -> str | None:
        # Checked again at send time (the policy may have changed since the URI was stored), also on
        # the host as aiohttp's URL parser reads it; a name's addresses are checked as it resolves
        # (runtime.callback_session's PolicyResolver) and the connection goes to those addresses.
        try:
            host = URL(url).raw_host or ""
        except ValueError:
            host = ""
        reason = self._policy.check(url) or self._policy.check_host(host)
        if reason is not None:
            return f"refused by the outbound URI policy: {reason}"
        assert self._http is not None, "deliveries happen inside run()"
        try:
            # No redirects: a 3xx could point anywhere the outbound-URI policy forbids.
            async with self._http.post(
                url,
                data=json.dumps(body, separators=(",", ":")).encode(),
                headers={"Content-Type": "application/json"},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as response:
                status = response.status
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                return f"refused by the outbound URI policy: {exc.os_error}"
            return f"{type(exc).__name__}: {exc}"[:300]
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {str(exc) or 'timed out'}"[:300]
        if 200 <= status < 300:  # Table 10.X.2.8-1: the result; any 2xx is a success
            return None
        return f"HTTP {status}"


def _outcomes(tx: Tx, *, delivered: list[int], failed: list[tuple[int, float, str]], now: float) -> None:
    tx.outbox.delivered_many(delivered, now)
    for delivery_id, retry_at, error in failed:
        tx.outbox.failed(delivery_id, retry_at, error)
