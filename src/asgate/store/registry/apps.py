"""External applications (CSC-14 clients the administrator registered), in a write transaction:
``tx.apps``."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, delete, insert, select, update

from asgate.domain.registry import ExternalApp, ExternalAppSpec
from asgate.store.registry._rows import IN_CHUNK, app
from asgate.store.schema_registry import external_apps


class Apps:
    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, client_id: str) -> ExternalApp | None:
        query = select(external_apps).where(external_apps.c.client_id == client_id)
        row = self._conn.execute(query).mappings().first()
        return app(row) if row else None

    def many(self, client_ids: Sequence[str]) -> dict[str, ExternalApp]:
        """The applications among ``client_ids`` that exist, by client id."""
        found: dict[str, ExternalApp] = {}
        for start in range(0, len(client_ids), IN_CHUNK):
            chunk = client_ids[start : start + IN_CHUNK]
            query = select(external_apps).where(external_apps.c.client_id.in_(chunk))
            for row in self._conn.execute(query).mappings():
                found[row["client_id"]] = app(row)
        return found

    def put(self, item: ExternalApp, *, new: bool) -> None:
        spec = ExternalAppSpec.model_validate(item.model_dump(include=set(ExternalAppSpec.model_fields)))
        values = {"spec": spec.dump_json().decode(), "version": item.version, "updated_at": item.updated_at}
        if new:
            self._conn.execute(
                insert(external_apps).values(client_id=item.client_id, created_at=item.created_at, **values)
            )
        else:
            where = external_apps.c.client_id == item.client_id
            self._conn.execute(update(external_apps).where(where).values(**values))

    def delete(self, client_id: str) -> None:
        self._conn.execute(delete(external_apps).where(external_apps.c.client_id == client_id))
