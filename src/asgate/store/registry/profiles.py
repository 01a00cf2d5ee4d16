"""Application profiles and their versions (seed 10.X.4), in a write transaction: ``tx.profiles``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, update

from asgate.store.registry._rows import ProfileRecord, profile
from asgate.store.schema_registry import app_profile_versions, app_profiles


class Profiles:
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, app_profile_id: str) -> ProfileRecord | None:
        query = select(app_profiles).where(app_profiles.c.app_profile_id == app_profile_id)
        row = self._conn.execute(query).mappings().first()
        return profile(row) if row else None

    def find(self, *, app_id: str | None = None, pool: tuple[str, str] | None = None) -> list[ProfileRecord]:
        """The profiles of ``app_id`` and/or of ``pool`` (every profile when neither), by index."""
        query = select(app_profiles).order_by(app_profiles.c.app_profile_index)
        if app_id is not None:
            query = query.where(app_profiles.c.app_id == app_id)
        if pool is not None:
            query = query.where(
                app_profiles.c.service_type == pool[0], app_profiles.c.service_name == pool[1]
            )
        return [profile(r) for r in self._conn.execute(query).mappings()]

    def next_index(self) -> int:
        highest = self._conn.execute(select(func.max(app_profiles.c.app_profile_index))).scalar()
        return int(highest or 0) + 1

    def insert(self, record: ProfileRecord) -> None:
        """A new profile and its first version."""
        item = record.profile
        values = _columns(record)
        self._conn.execute(
            insert(app_profiles).values(
                app_profile_id=item.app_profile_id,
                app_id=item.app_id,
                service_type=item.authorized_service,
                service_name=item.service_name,
                app_profile_index=item.app_profile_index,
                created_at=item.updated_at,
                **values,
            )
        )
        self._conn.execute(
            insert(app_profile_versions).values(
                app_profile_id=item.app_profile_id,
                version=item.version,
                profile=values["profile"],
                created_at=item.updated_at,
            )
        )

    def update_many(self, records: Sequence[ProfileRecord]) -> None:
        """New versions of many existing profiles in two statements (a pool change touching thousands)."""
        if not records:
            return
        # executemany binds by name, and a SET column's own name is reserved: hence the b_ prefix.
        rows = [
            {"b_id": r.profile.app_profile_id, **{f"b_{k}": v for k, v in _columns(r).items()}}
            for r in records
        ]
        columns = ("version", "requested", "profile", "updated_at")
        self._conn.execute(
            update(app_profiles)
            .where(app_profiles.c.app_profile_id == bindparam("b_id"))
            .values({name: bindparam(f"b_{name}") for name in columns}),
            rows,
        )
        self._conn.execute(
            insert(app_profile_versions),
            [
                {"app_profile_id": r["b_id"], "version": r["b_version"], "profile": r["b_profile"],
                 "created_at": r["b_updated_at"]}
                for r in rows
            ],
        )  # fmt: skip

    def delete(self, app_profile_id: str) -> None:
        """The profile and its versions (without the profile no version is readable: no orphans)."""
        self._conn.execute(delete(app_profiles).where(app_profiles.c.app_profile_id == app_profile_id))
        versions = app_profile_versions.c
        self._conn.execute(delete(app_profile_versions).where(versions.app_profile_id == app_profile_id))


def _columns(record: ProfileRecord) -> dict[str, Any]:
    """What a profile version stores: the profile, and what it was built from (request and edit)."""
    item = record.profile
    basis = {
        "requested": record.requested.dump() if record.requested else None,
        "edit": record.edit.dump() if record.edit else None,
    }
    return {
        "version": item.version,
        "requested": json.dumps(basis),
        "profile": item.dump_json().decode(),
        "updated_at": item.updated_at,
    }
