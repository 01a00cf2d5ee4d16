"""The notification outbox (seed 10.X.4 step 2: at least once, with retries), in a write
transaction: ``tx.outbox``. Queued in the transaction of the change; claimed with a lease by the
delivering process; marked delivered or failed after each attempt."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, insert, or_, select, update

from asgate.store.registry._rows import IN_CHUNK, Delivery, delivery, epoch_dt
from asgate.store.schema_registry import notifications

Queued = tuple[str, str, int, str]  # app_id, app_profile_id, version, destination


class Outbox:
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def enqueue_many(self, queued: Sequence[Queued], now: float) -> None:
        """Queue ``(app_id, app_profile_id, version, destination)`` notifications at once; undelivered
        older ones for the same profiles are superseded."""
        if not queued:
            return
        c = notifications.c
        profile_ids = [q[1] for q in queued]
        for start in range(0, len(profile_ids), IN_CHUNK):
            chunk = profile_ids[start : start + IN_CHUNK]
            self._conn.execute(
                update(notifications)
                .where(c.app_profile_id.in_(chunk), c.state == "PENDING")
                .values(state="SUPERSEDED", lease_until=None)
            )
        self._conn.execute(
            insert(notifications),
            [
                {
                    "app_id": app_id,
                    "app_profile_id": profile_id,
                    "version": version,
                    "destination": destination,
                    "state": "PENDING",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "lease_until": None,
                    "last_error": None,
                    "created_at": epoch_dt(now),
                    "delivered_at": None,
                }
                for app_id, profile_id, version, destination in queued
            ],
        )

    def claim_due(
        self, now: float, lease: float, limit: int, websocket_apps: Sequence[str] | None
    ) -> list[Delivery]:
        """Lease the notifications due now (so another process does not send them too)."""
        c = notifications.c
        due = select(notifications).where(
            c.state == "PENDING", c.next_attempt_at <= now, or_(c.lease_until.is_(None), c.lease_until <= now)
        )
        if websocket_apps is not None:
            # WebSocket notifications are sent by the process that holds the application's socket.
            due = due.where(or_(c.destination != "websocket", c.app_id.in_(list(websocket_apps))))
        query = due.order_by(c.next_attempt_at).limit(limit)
        rows = [delivery(r) for r in self._conn.execute(query).mappings()]
        if rows:
            self._conn.execute(
                update(notifications).where(c.id.in_([r.id for r in rows])).values(lease_until=now + lease)
            )
        return rows

    def delivered_many(self, delivery_ids: Sequence[int], now: float) -> None:
        """Mark acknowledged notifications (a superseded one stays superseded)."""
        c = notifications.c
        for start in range(0, len(delivery_ids), IN_CHUNK):
            self._conn.execute(
                update(notifications)
                .where(c.id.in_(delivery_ids[start : start + IN_CHUNK]), c.state == "PENDING")
                .values(
                    state="DELIVERED", delivered_at=epoch_dt(now), lease_until=None, attempts=c.attempts + 1
                )
            )

    def failed(self, delivery_id: int, retry_at: float, error: str) -> None:
        c = notifications.c
        self._conn.execute(
            update(notifications)
            .where(c.id == delivery_id, c.state == "PENDING")
            .values(
                attempts=c.attempts + 1, next_attempt_at=retry_at, last_error=error[:1000], lease_until=None
            )
        )

    def retry_now(self, delivery_id: int, now: float) -> bool:
        """Make a pending notification due now; False if there is none pending with that id."""
        c = notifications.c
        result = self._conn.execute(
            update(notifications)
            .where(c.id == delivery_id, c.state == "PENDING")
            .values(next_attempt_at=now, lease_until=None)
        )
        return bool(result.rowcount)
