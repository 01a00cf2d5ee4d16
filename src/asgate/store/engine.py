"""Engine construction: SQLite (WAL, configurable fsync) or PostgreSQL (asyncpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from asgate.kernel.atrest import sqlite_database


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(
    url: str, *, sqlite_synchronous: str = "FULL", schema: str | None = None, pool_size: int = 10
) -> AsyncEngine:
    """Create the engine; SQLite files get WAL, a busy timeout and foreign keys; PostgreSQL may
    keep asgate's tables in their own ``schema``."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            sqlite_database(Path(database))  # 0600 before SQLite creates it (and its WAL) 0644
        # No overflow: surplus connections would be opened and closed per burst, and every
        # aiosqlite connection is a thread. Waiters queue for a pooled connection instead.
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_size=pool_size, max_overflow=0)
        _sqlite_pragmas(engine.sync_engine, sqlite_synchronous)
        return engine
    connect_args: dict[str, Any] = {"server_settings": {"search_path": schema}} if schema else {}
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True, connect_args=connect_args
    )


def make_writer(url: str, *, sqlite_synchronous: str = "FULL") -> Engine | None:
    """SQLite: a synchronous engine for the group-commit writer thread (one connection). ``None``
    for PostgreSQL, whose writes stay on the event loop."""
    if not is_sqlite(url):
        return None
    sync_url = make_url(url).set(drivername="sqlite")
    # check_same_thread: the connection is used by the writer thread only, but closed at shutdown
    # from the event loop's thread.
    engine = create_engine(
        sync_url, connect_args={"timeout": 30, "check_same_thread": False}, pool_size=1, max_overflow=0
    )
    _sqlite_pragmas(engine, sqlite_synchronous)

    # SQLAlchemy's documented fix for pysqlite's transaction handling, so that SAVEPOINTs work
    # (each transaction script runs in one); IMMEDIATE takes the write lock at the start, so a
    # transaction never fails half-way on a lock upgrade.
    @event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    if synchronous not in ("FULL", "EXTRA", "NORMAL"):
        raise ValueError(synchronous)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer; synchronous=FULL fsyncs the WAL at every commit, so
        # an acknowledged write survives a crash of the process and of the machine.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
