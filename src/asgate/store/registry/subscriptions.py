"""Applications' notification subscriptions (seed 10.X.3 step 4), in a write transaction:
``tx.subscriptions``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from asgate.store.registry._rows import IN_CHUNK, Subscription, subscription
from asgate.store.schema_registry import subscriptions


class Subscriptions:
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def many(self, app_ids: Sequence[str]) -> dict[str, Subscription]:
        """The subscriptions of the applications among ``app_ids`` that have one, by application."""
        found: dict[str, Subscription] = {}
        for start in range(0, len(app_ids), IN_CHUNK):
            chunk = app_ids[start : start + IN_CHUNK]
            query = select(subscriptions).where(subscriptions.c.app_id.in_(chunk))
            for row in self._conn.execute(query).mappings():
                found[row["app_id"]] = subscription(row)
        return found

    def put(self, sub: Subscription, now: datetime) -> None:
        self._conn.execute(delete(subscriptions).where(subscriptions.c.app_id == sub.app_id))
        self._conn.execute(
            insert(subscriptions).values(
                app_id=sub.app_id,
                notification_destination=sub.notification_destination,
                websocket=sub.websocket,
                updated_at=now,
            )
        )

    def delete(self, app_id: str) -> None:
        self._conn.execute(delete(subscriptions).where(subscriptions.c.app_id == app_id))
