"""Apply schema migrations (Alembic) at start-up, safely when several processes start at once."""

from __future__ import annotations

import ast
import asyncio
import fcntl
import os
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from asgate.kernel.atrest import FILE_MODE
from asgate.store.engine import make_engine

MIGRATIONS = Path(__file__).parent / "migrations"
# Any fixed number: serialises concurrent migrators on one PostgreSQL database.
_PG_LOCK_KEY = 74807481
# Alembic keeps its migration context in module globals: one migration at a time per event loop.
_loop_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _config(connection: Connection) -> Any:
    from alembic.config import Config  # imported only when a migration runs: Alembic costs ~0.3 s

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    from alembic import command

    command.upgrade(_config(connection), "head")


def _current(connection: Connection) -> str | None:
    """The applied revision, read as Alembic stores it (without importing Alembic)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def known_revisions() -> dict[str, str | None]:
    """Every revision this version knows, each with its down_revision (read without Alembic)."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("[0-9]*.py"):
        found: dict[str, Any] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition(" = ")
            if sep and name in ("revision", "down_revision"):
                found[name] = ast.literal_eval(value)
        revisions[found["revision"]] = found["down_revision"]
    return revisions


def head() -> str:
    """The newest revision: the one no migration file names as its down_revision."""
    revisions = known_revisions()
    heads = set(revisions) - {down for down in revisions.values() if down}
    if len(heads) != 1:
        raise RuntimeError(f"migrations must form one chain, heads: {sorted(heads)}")
    return heads.pop()


async def upgrade(engine: AsyncEngine, schema: str | None = None) -> None:
    """Bring the schema to the newest revision (no-op when it is already there).

    Safe when several processes start at once: PostgreSQL serialises them with an advisory lock,
    SQLite with an exclusive lock on a file beside the database.
    """
    lock = _loop_locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock, _sqlite_file_lock(engine):
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
                if schema:
                    await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            if await conn.run_sync(_current) != head():
                await conn.run_sync(_upgrade)


@asynccontextmanager
async def _sqlite_file_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    database = make_url(str(engine.url)).database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)  # whatever the umask
        await anyio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def revisions(
    url: str, *, schema: str | None, sqlite_synchronous: str, apply: bool
) -> tuple[str | None, str | None]:
    """The database's revision before and after (after = before unless ``apply``), over an
    engine of its own (``asgate db``: a deployment migrates once, before its servers start)."""
    engine = make_engine(url, sqlite_synchronous=sqlite_synchronous, schema=schema, pool_size=1)
    try:
        before = await current_revision(engine)
        if apply:
            await upgrade(engine, schema)
            return before, await current_revision(engine)
        return before, before
    finally:
        await engine.dispose()
