from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from asgate.store import Store


@pytest.fixture
async def store(database: dict[str, Any]) -> AsyncIterator[Store]:
    """A migrated store on each backend (SQLite always, PostgreSQL when reachable)."""
    opened = await Store.open(database["database_url"], schema=database.get("database_schema"))
    try:
        yield opened
    finally:
        await opened.close()
