"""``asgate access-servers list``: the registered access servers, live or silent, and the static
push URLs, with each one's acknowledged sequence and lag, read from the store (both backends)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import Result

from asgate.store import Store
from asgate.store.registry import AccessServerRecord
from asgate.store.tx import Tx


async def _seed(database: dict[str, Any], data_dir: Path) -> None:
    url = database.get("database_url") or f"sqlite+aiosqlite:///{data_dir.resolve() / 'asgate.db'}"
    store = await Store.open(url, schema=database.get("database_schema"))
    now = datetime.now(UTC)

    def seed(tx: Tx) -> None:
        tx.access_servers.add(
            AccessServerRecord("sas-a", "asgate-access-sas-a", "http://10.0.0.12:7482", now, now)
        )
        old = now - timedelta(hours=1)
        tx.access_servers.add(
            AccessServerRecord("sas-b", "asgate-access-sas-b", "http://10.0.0.13:7482", old, old)
        )
        tx.targets.ensure("http://10.0.0.12:7482", 0)

    try:
        await store.write(seed)
    finally:
        await store.close()


def test_live_and_silent_access_servers_with_their_lag(
    asgate: Callable[..., Result], database: dict[str, Any], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(_seed(database, data_dir))
    listed = json.loads(asgate("access-servers", "list", "--json").output)
    by_id = {i["sasId"]: i for i in listed["items"]}
    assert listed["sequence"] == 0
    assert (by_id["sas-a"]["live"], by_id["sas-a"]["lag"], by_id["sas-a"]["ackedSequence"]) == (True, 0, 0)
    assert by_id["sas-b"]["live"] is False and "lag" not in by_id["sas-b"]  # no cursor yet
    live = json.loads(asgate("access-servers", "list", "--live", "--json").output)
    assert [i["sasId"] for i in live["items"]] == ["sas-a"]
    table = asgate("access-servers", "list").output
    assert "sas-a" in table and "silent" in table and "http://10.0.0.13:7482" in table
