"""The notification outbox (seed 10.X.4 step 2: at least once, with retries), in a write
transaction: ``tx.outbox``. Queued in the transaction of the change; claimed with a lease by the
delivering process; marked delivered or failed after each attempt.

Several processes deliver from one outbox. On PostgreSQL a claim locks the rows it takes with
``FOR UPDATE SKIP LOCKED``: two processes claiming at once never take the same notification and
never wait for each other, and a row another process claimed and committed meanwhile is checked
again (its lease) before it is taken. On SQLite the claim runs in the single writer's transaction
(``BEGIN IMMEDIATE``), which serializes every process's claims. A notification is not claimed while
an older one of the same profile is still in flight elsewhere (leased, even if superseded since), so
an application receives each profile's versions in order whichever process sends them. Queuing a
notification on PostgreSQL also signals it (``NOTIFY``, sent only if the transaction commits; see
:mod:`asgate.store.signals`), so that idle notifiers of every process wake at once."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, and_, exists, insert, or_, select, update

from asgate.store.registry._rows import IN_CHUNK, Delivery, delivery, epoch_dt
from asgate.store.schema_registry import notifications
from asgate.store.signals import OUTBOX, signal

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
            # The lease stays: a superseded notification may still be in flight (see claim_due).
            self._conn.execute(
                update(notifications)
                .where(c.app_profile_id.in_(chunk), c.state == "PENDING")
                .values(state="SUPERSEDED")
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
        signal(self._conn, OUTBOX)

    def claim_due(
        self, now: float, lease: float, limit: int, websocket_apps: Sequence[str] | None
    ) -> list[Delivery]:
        """Lease the notifications due now (so another process does not send them too)."""
        c = notifications.c
        older = notifications.alias("older")
        due = select(notifications).where(
            c.state == "PENDING",
            c.next_attempt_at <= now,
            or_(c.lease_until.is_(None), c.lease_until <= now),
            # Per-profile order: not while an earlier version is being sent (by any process).
            ~exists().where(
                and_(
                    older.c.app_profile_id == c.app_profile_id,
                    older.c.id != c.id,
                    older.c.lease_until > now,
                )
            ),
        )
        if websocket_apps is not None:
            # WebSocket notifications are sent by the process that holds the application's socket.
            due = due.where(or_(c.destination != "websocket", c.app_id.in_(list(websocket_apps))))
        # FOR UPDATE SKIP LOCKED on PostgreSQL (of these rows only); SQLite renders no lock clause.
        query = due.order_by(c.next_attempt_at, c.id).limit(limit).with_for_update(skip_locked=True, of=c.id)
        rows = [delivery(r) for r in self._conn.execute(query).mappings()]
        for start in range(0, len(rows), IN_CHUNK):
            self._conn.execute(
                update(notifications)
                .where(c.id.in_([r.id for r in rows[start : start + IN_CHUNK]]))
                .values(lease_until=now + lease)
            )
        return rows

    def delivered_many(self, delivery_ids: Sequence[int], now: float) -> None:
        """Mark acknowledged notifications (a superseded one stays superseded, no longer in flight)."""
        c = notifications.c
        for start in range(0, len(delivery_ids), IN_CHUNK):
            chunk = delivery_ids[start : start + IN_CHUNK]
            self._conn.execute(
                update(notifications)
                .where(c.id.in_(chunk), c.state == "PENDING")
                .values(
                    state="DELIVERED", delivered_at=epoch_dt(now), lease_until=None, attempts=c.attempts + 1
                )
            )
            self._release(chunk)

    def failed(self, delivery_id: int, retry_at: float, error: str) -> None:
        c = notifications.c
        self._conn.execute(
            update(notifications)
            .where(c.id == delivery_id, c.state == "PENDING")
            .values(
                attempts=c.attempts + 1, next_attempt_at=retry_at, last_error=error[:1000], lease_until=None
            )
        )
        self._release([delivery_id])

    def _release(self, delivery_ids: Sequence[int]) -> None:
        """The attempt is over: a notification superseded while in flight no longer holds back the
        newer version of its profile."""
        c = notifications.c
        self._conn.execute(
            update(notifications)
            .where(c.id.in_(list(delivery_ids)), c.state == "SUPERSEDED", c.lease_until.is_not(None))
            .values(lease_until=None)
        )

    def retry_now(self, delivery_id: int, now: float) -> bool:
        """Make a pending notification due now; False if there is none pending with that id. One in
        flight keeps its lease (it is being tried now; another process must not send it too)."""
        c = notifications.c
        result = self._conn.execute(
            update(notifications).where(c.id == delivery_id, c.state == "PENDING").values(next_attempt_at=now)
        )
        if result.rowcount:
            signal(self._conn, OUTBOX)
        return bool(result.rowcount)
