"""The CSC-15 change log (what every service access server must apply, numbered), in a write
transaction: ``tx.changes``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, insert, select

from asgate.store.schema_registry import change_log
from asgate.store.signals import CHANGES, signal


def last_of(kinds: Sequence[str]) -> Select[Any]:
    """The newest change of ``kinds``: walks the primary key backwards (max() with a WHERE would scan
    the log)."""
    c = change_log.c
    return select(c.seq).where(c.kind.in_(list(kinds))).order_by(c.seq.desc()).limit(1)


Entry = tuple[str, str, str, dict[str, Any] | None]  # kind, key, op, payload


class Changes:
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def append(self, kind: str, key: str, op: str, payload: dict[str, Any] | None, now: datetime) -> None:
        """CSC-15: record a change every service access server must apply, with the next sequence
        number."""
        self._conn.execute(
            insert(change_log).values(
                at=now,
                kind=kind,
                key=key[:512],
                op=op,
                payload=json.dumps(payload) if payload is not None else None,
            )
        )
        signal(self._conn, CHANGES)

    def append_many(self, changes: Sequence[Entry], now: datetime) -> None:
        """Many CSC-15 changes ``(kind, key, op, payload)``, numbered in the order given."""
        if changes:
            self._conn.execute(
                insert(change_log),
                [
                    {"at": now, "kind": kind, "key": key[:512], "op": op,
                     "payload": json.dumps(payload) if payload is not None else None}
                    for kind, key, op, payload in changes
                ],
            )  # fmt: skip
            signal(self._conn, CHANGES)

    def last_seq(self, kinds: Sequence[str]) -> int:
        """The sequence number of the newest change of ``kinds`` (0: none)."""
        return int(self._conn.execute(last_of(kinds)).scalar() or 0)
