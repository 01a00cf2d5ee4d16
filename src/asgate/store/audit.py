"""The audit log: every mutation and every authorization decision, with its reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from asgate.kernel.wire import WireModel
from asgate.store.schema import audit_events


class AuditEvent(WireModel):
    id: int | None = None
    at: datetime
    actor: str
    action: str
    resource: str
    outcome: str  # "ok" | "denied" | "error"
    reason: str | None = None
    details: dict[str, Any] | None = None


def audit_row(
    actor: str,
    action: str,
    resource: str,
    outcome: str = "ok",
    *,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An audit row for :meth:`AuditTx.append_rows` (a plain dict: this is on the hot write path)."""
    # Identifiers come from callers and may be huge; the audit row must never fail the request.
    return {
        "at": datetime.now(UTC),
        "actor": _clip(actor, 256),
        "action": action,
        "resource": _clip(resource, 512),
        "outcome": outcome,
        "reason": reason,
        "details": details,
    }


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AuditTx:
    """The audit log inside one unit of work (``tx.audit``): rows commit or roll back with the
    writes they describe.

    Rows are only appended, never read back in the same transaction, so they are buffered and
    inserted with one statement when the unit of work ends (:meth:`asgate.store.tx.Tx.flush`): on the
    hot write paths that is one statement per batch instead of one per event.
    """

    __slots__ = ("_conn", "_rows")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._rows: list[dict[str, Any]] = []

    def append(
        self,
        actor: str,
        action: str,
        resource: str,
        outcome: str = "ok",
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one event (the arguments of :func:`audit_row`)."""
        self._rows.append(audit_row(actor, action, resource, outcome, reason=reason, details=details))

    def append_rows(self, rows: list[dict[str, Any]]) -> None:
        """Many events at once, as :func:`audit_row` builds them."""
        self._rows.extend(rows)

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            self._conn.execute(insert(audit_events), rows)


class AuditStore:
    """The reader (events are written with ``tx.audit``, in the unit of work of what they audit)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def scan(
        self,
        *,
        after: int | None = None,
        limit: int = 100,
        resource: str | None = None,
        actor: str | None = None,
        action: str | None = None,
    ) -> list[AuditEvent]:
        query = select(audit_events).order_by(audit_events.c.id).limit(limit)
        if after is not None:
            query = query.where(audit_events.c.id > after)
        if resource is not None:
            query = query.where(audit_events.c.resource == resource)
        if actor is not None:
            query = query.where(audit_events.c.actor == actor)
        if action is not None:
            query = query.where(audit_events.c.action == action)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [AuditEvent.model_validate(dict(row)) for row in rows]
