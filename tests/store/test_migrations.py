"""Migrations create exactly the tables in schema.py, and running them again changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection

from asgate.store import Store, migrate
from asgate.store.schema import metadata


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": False})
    return list(compare_metadata(context, metadata))


async def test_migrated_schema_matches_the_models(store: Store) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
    assert await migrate.current_revision(store.engine) == migrate.head()


async def test_upgrading_again_and_concurrently_is_harmless(database: dict[str, Any]) -> None:
    url, schema = database["database_url"], database.get("database_schema")
    stores = await asyncio.gather(*(Store.open(url, schema=schema) for _ in range(3)))
    for store in stores:
        assert await migrate.current_revision(store.engine) == migrate.head()
        await store.close()
