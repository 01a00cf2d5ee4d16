"""The service access servers that registered themselves with the registry (issue 10 §2), in a
write transaction: ``tx.access_servers``. Their CSC-15 cursors are the pusher's (``tx.targets``,
keyed by URL), kept when an access server goes away so that it resumes when it comes back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.engine import RowMapping

from asgate.store.schema_registry import access_servers


@dataclass(frozen=True)
class AccessServerRecord:
    sas_id: str
    owner: str  # the client ID that registered it: only that client may refresh or remove it
    url: str  # where the registry pushes CSC-15 (its control plane)
    registered_at: datetime
    last_seen_at: datetime


def access_server(row: RowMapping) -> AccessServerRecord:
    return AccessServerRecord(
        row["sas_id"], row["owner"], row["url"], row["registered_at"], row["last_seen_at"]
    )


class AccessServers:
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, sas_id: str) -> AccessServerRecord | None:
        row = self._conn.execute(
            select(access_servers).where(access_servers.c.sas_id == sas_id)
        ).mappings().first()  # fmt: skip
        return access_server(row) if row is not None else None

    def count(self) -> int:
        return int(self._conn.execute(select(func.count()).select_from(access_servers)).scalar_one())

    def add(self, record: AccessServerRecord) -> None:
        self._conn.execute(
            insert(access_servers).values(
                sas_id=record.sas_id,
                owner=record.owner,
                url=record.url,
                registered_at=record.registered_at,
                last_seen_at=record.last_seen_at,
            )
        )

    def seen(self, sas_id: str, url: str, now: datetime) -> None:
        """A heartbeat (the registration again): still alive, at ``url``."""
        self._conn.execute(
            update(access_servers).where(access_servers.c.sas_id == sas_id).values(url=url, last_seen_at=now)
        )

    def remove(self, sas_id: str) -> None:
        self._conn.execute(delete(access_servers).where(access_servers.c.sas_id == sas_id))

    def forget_silent(self, before: datetime) -> int:
        """Forget the access servers not heard from since ``before``; how many."""
        result = self._conn.execute(delete(access_servers).where(access_servers.c.last_seen_at < before))
        return int(result.rowcount or 0)
