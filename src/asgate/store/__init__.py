"""Persistence: one store per aggregate over one SQLAlchemy Core engine (SQLite or PostgreSQL).

The store knows nothing of HTTP: it returns models or ``None`` and the services decide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.ext.asyncio import AsyncEngine

from asgate.store import migrate, schema_idm, schema_registry  # noqa: F401 - complete the metadata
from asgate.store.audit import AuditEvent, AuditStore
from asgate.store.clients import AsSvcIdTakenError, ClientExistsError, ClientStore, ReservedClientIdError
from asgate.store.engine import make_engine, make_writer
from asgate.store.grants_oidc import OidcGrantStore
from asgate.store.group_commit import BatchObserver, GroupCommitter
from asgate.store.msgs import RegistrationStore
from asgate.store.pools import PoolStore
from asgate.store.registry import RegistryStore
from asgate.store.signals import Listener
from asgate.store.signing_keys import SigningKeyStore
from asgate.store.tx import Tx
from asgate.store.users import McIdTakenError, UserExistsError, UserStore

A = TypeVar("A")
I = TypeVar("I")  # noqa: E741 - an item of a batch
R = TypeVar("R")

__all__ = [
    "AsSvcIdTakenError",
    "AuditEvent",
    "ClientExistsError",
    "ReservedClientIdError",
    "McIdTakenError",
    "Store",
    "UserExistsError",
]


class Store:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        writer: Engine | None = None,
        observe: BatchObserver | None = None,
        schema: str | None = None,
    ) -> None:
        self.engine = engine
        self.schema = schema
        self.committer = GroupCommitter(engine, writer=writer, observe=observe)
        self.clients = ClientStore(engine)
        self.registrations = RegistrationStore(engine)
        self.audit = AuditStore(engine)
        self.registry = RegistryStore(engine)
        self.pools = PoolStore(engine)
        self.users = UserStore(engine)
        self.oidc = OidcGrantStore(engine)
        self.signing_keys = SigningKeyStore(engine)
        self._batches: dict[Callable[..., Any], _Batch[Any, Any]] = {}

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        sqlite_synchronous: str = "FULL",
        schema: str | None = None,
        pool_size: int = 10,
        migrate_schema: bool = True,
        observe: BatchObserver | None = None,
    ) -> Store:
        engine = make_engine(url, sqlite_synchronous=sqlite_synchronous, schema=schema, pool_size=pool_size)
        try:
            if migrate_schema:
                await migrate.upgrade(engine, schema)
        except BaseException:
            await engine.dispose()
            raise
        writer = make_writer(url, sqlite_synchronous=sqlite_synchronous)
        return cls(engine, writer=writer, observe=observe, schema=schema)

    def listener(self, on_signal: Callable[[str], None]) -> Listener | None:
        """What follows the other processes' signals (:mod:`asgate.store.signals`); None on SQLite,
        where only this process writes what it must act on."""
        if self.engine.dialect.name != "postgresql":
            return None
        return Listener(self.engine.url, self.schema, on_signal)

    async def write(self, work: Callable[[Tx], R]) -> R:
        """Run ``work(tx)`` in the next group-commit transaction, in a savepoint of its own: the one way
        to write. ``tx`` (:class:`~asgate.store.tx.Tx`) has one typed object per aggregate. An
        exception ``work`` raises (a refusal such as a ProblemError, or a failed statement) undoes only
        its own writes and is raised here; the other work of the batch commits."""
        outcome: _Outcome[R] = await self.committer.submit(_run_work, work)  # type: ignore[arg-type]
        if outcome.error is not None:
            raise outcome.error
        return outcome.value  # type: ignore[return-value]

    async def write_many(self, work: Callable[[Tx, list[I]], list[R]], item: I) -> R:
        """Like :meth:`write` for a hot path: ``work(tx, items)`` runs once for every ``item`` submitted
        concurrently with the same ``work`` (the group commit's batch, in arrival order) and returns
        one result per item, so a batch costs a few set-based statements (one query for a whole batch
        of heartbeats), not a few per item, and no savepoint. If ``work`` raises, the group committer
        runs each item again alone, so only the culprit sees the exception (raised here).
        ``work`` must not have effects outside ``tx``.

        (Measured on AS registrations, bench/asreg.py: one ``write`` per registration, i.e. a
        savepoint and a few statements each, cut throughput by half on SQLite and by three quarters
        on PostgreSQL, one round trip per statement.)"""
        batch = self._batches.get(work)
        if batch is None:
            batch = self._batches[work] = _Batch(work)
        outcome: _Outcome[R] = await self.committer.submit(batch, item)
        if outcome.error is not None:
            raise outcome.error
        return outcome.value  # type: ignore[return-value]

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # noqa: BLE001 - health reports, never raises
            return False
        return True

    async def close(self) -> None:
        await self.committer.close()
        await self.engine.dispose()


class _Outcome(Generic[R]):
    __slots__ = ("error", "value")

    def __init__(self, value: R | None = None, error: Exception | None = None) -> None:
        self.value = value
        self.error = error


def _run_work(conn: Connection, items: list[Callable[[Tx], object]]) -> list[_Outcome[object]]:
    """The group committer's batch function for :meth:`Store.write`: each work in a savepoint."""
    results: list[_Outcome[object]] = []
    for work in items:
        savepoint = conn.begin_nested()
        try:
            tx = Tx(conn)
            value = work(tx)
            tx.flush()
        except Exception as error:  # noqa: BLE001 - a refusal or a failure: undo this work only
            savepoint.rollback()
            results.append(_Outcome(error=error))
        else:
            savepoint.commit()
            results.append(_Outcome(value))
    return results


class _Batch(Generic[I, R]):
    """The group committer's batch function for one ``work`` of :meth:`Store.write_many` (one object
    per ``work``, kept by the store: the committer batches consecutive jobs whose functions are equal,
    and a bound method is a new object on each access)."""

    __slots__ = ("_work",)

    def __init__(self, work: Callable[[Tx, list[I]], list[R]]) -> None:
        self._work = work

    def __call__(self, conn: Connection, items: list[I]) -> list[_Outcome[R]]:
        # No savepoint: if ``work`` raises, the group committer rolls the transaction back and runs
        # each job again alone, so only the culprit sees the exception (a savepoint per batch cost
        # 10-15 % of AS registrations' throughput on SQLite, docs/benchmarks.md).
        return [_Outcome(value) for value in self._run(conn, items)]

    def _run(self, conn: Connection, items: list[I]) -> list[R]:
        tx = Tx(conn)
        values = self._work(tx, items)
        if len(values) != len(items):
            raise RuntimeError(f"{self._work!r} returned {len(values)} results for {len(items)} items")
        tx.flush()
        return values
