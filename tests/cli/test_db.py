"""``asgate db``: migrate once before any server starts (a Kubernetes Job, a systemd oneshot)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import make_url, text

from asgate.cli import main
from asgate.store import Store, migrate
from asgate.store.engine import make_engine
from tests.live import free_port

Asgate = Callable[..., Result]


async def _set_revision(database: dict[str, Any], revision: str) -> None:
    engine = make_engine(database["database_url"], schema=database.get("database_schema"))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        await engine.dispose()


async def _revision(database: dict[str, Any]) -> str | None:
    engine = make_engine(database["database_url"], schema=database.get("database_schema"))
    try:
        return await migrate.current_revision(engine)
    finally:
        await engine.dispose()


def test_upgrade_brings_an_empty_database_to_the_newest_revision_once(
    asgate: Asgate, database: dict[str, Any]
) -> None:
    head = migrate.head()
    status = asgate("db", "status", "--check", code=1).output
    assert "revision none" in status and "run `asgate db upgrade`" in status
    assert f"from revision none to {head}" in asgate("db", "upgrade").output
    assert json.loads(asgate("db", "status", "--json").output) == {
        "current": head,
        "newest": head,
        "up_to_date": True,
    }
    asgate("db", "status", "--check")  # exit 0 now
    assert f"already at revision {head}" in asgate("db", "upgrade").output

    # A server that does not migrate finds every table there.
    async def unmigrated_store_works() -> None:
        store = await Store.open(
            database["database_url"], schema=database.get("database_schema"), migrate_schema=False
        )
        try:
            assert await migrate.current_revision(store.engine) == head
            assert await store.clients.count() == 0
        finally:
            await store.close()

    asyncio.run(unmigrated_store_works())


def test_a_database_a_newer_version_migrated_is_refused_not_touched(
    asgate: Asgate, database: dict[str, Any]
) -> None:
    asgate("db", "upgrade")
    asyncio.run(_set_revision(database, "9999"))
    out = asgate("db", "upgrade", code=1).output
    assert "revision 9999" in out and "newer version" in out and "Traceback" not in out
    assert "newer version" in asgate("db", "status", "--check", code=1).output
    assert asyncio.run(_revision(database)) == "9999"  # left as it was


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_multi_host_url_reaches_the_primary_past_a_dead_node(
    database: dict[str, Any], tmp_path: Path
) -> None:
    """docs/operations.md: one URL naming every PostgreSQL node with target_session_attrs=read-write
    (a fail-over needs no change of settings); a node that does not answer is skipped."""
    primary = make_url(database["database_url"])
    dead = free_port()
    url = (
        f"postgresql://{primary.username}@/{primary.database}"
        f"?host=127.0.0.1:{dead}&host={primary.host}:{primary.port or 5432}&target_session_attrs=read-write"
    )
    env = {
        "ASGATE_DATA_DIR": str(tmp_path / "data"),
        "ASGATE_DATABASE_URL": url,
        "ASGATE_DATABASE_SCHEMA": database["database_schema"],
    }
    runner = CliRunner()
    upgraded = runner.invoke(main, ["db", "upgrade"], env=env, catch_exceptions=False)
    assert upgraded.exit_code == 0 and "upgraded" in upgraded.output, upgraded.output
    status = runner.invoke(main, ["db", "status", "--json"], env=env, catch_exceptions=False)
    assert json.loads(status.output)["up_to_date"] is True
    # The same schema, seen through the plain URL.
    assert asyncio.run(_revision(database)) == migrate.head()
