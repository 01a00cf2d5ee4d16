"""The service access servers the registry pushes CSC-15 changes to, and each one's cursor in the
change log, in a write transaction: ``tx.targets``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, or_, select, update

from asgate.store.schema_registry import sas_targets


class Targets:
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def ensure(self, url: str, start_seq: int) -> None:
        """Know ``url`` (its cursor at ``start_seq`` if it is new)."""
        if self._conn.execute(select(sas_targets.c.url).where(sas_targets.c.url == url)).first() is None:
            self._conn.execute(
                insert(sas_targets).values(url=url, acked_seq=start_seq, attempts=0, next_attempt_at=0.0)
            )

    def acked(self, url: str, seq: int, now: datetime) -> None:
        """The access server applied the changes up to ``seq`` (a cursor only moves forwards here)."""
        self._conn.execute(
            update(sas_targets)
            .where(sas_targets.c.url == url, sas_targets.c.acked_seq < seq)
            .values(acked_seq=seq, attempts=0, next_attempt_at=0.0, last_error=None, last_success_at=now)
        )

    def failed(self, url: str, retry_at: float, error: str) -> None:
        c = sas_targets.c
        self._conn.execute(
            update(sas_targets)
            .where(c.url == url)
            .values(attempts=c.attempts + 1, next_attempt_at=retry_at, last_error=error[:1000])
        )

    def cursor(self, url: str, seq: int, note: str, now: datetime) -> None:
        """Move a cursor to where the access server says it is (forwards or backwards), with a note."""
        self._conn.execute(
            update(sas_targets)
            .where(sas_targets.c.url == url)
            .values(
                acked_seq=seq, attempts=0, next_attempt_at=0.0, last_error=note[:1000], last_success_at=now
            )
        )

    def claim(self, url: str, holder: str, now: float, until: float) -> bool:
        """Take or renew the lease on pushing to ``url`` until ``until`` (epoch seconds): whether
        ``holder`` has it. One statement, so two registry processes never both win it."""
        c = sas_targets.c
        result = self._conn.execute(
            update(sas_targets)
            .where(c.url == url, or_(c.holder.is_(None), c.holder == holder, c.lease_until < now))
            .values(holder=holder, lease_until=until)
        )
        return bool(result.rowcount)

    def release(self, holder: str) -> None:
        """``holder`` stops pushing (its process stops): another process may take its targets now."""
        c = sas_targets.c
        self._conn.execute(
            update(sas_targets).where(c.holder == holder).values(holder=None, lease_until=None)
        )
