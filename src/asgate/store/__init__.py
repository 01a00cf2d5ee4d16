"""Persistence: one store per aggregate over one SQLAlchemy Core engine (SQLite or PostgreSQL).

The store knows nothing of HTTP: it returns models or ``None`` and the services decide.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

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
from asgate.store.tx import Tx
from asgate.store.users import McIdTakenError, UserExistsError, UserStore

A = TypeVar("A")
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
        self, engine: AsyncEngine, *, writer: Engine | None = None, observe: BatchObserver | None = None
    ) -> None:
        self.engine = engine
        self.committer = GroupCommitter(engine, writer=writer, observe=observe)
        self.clients = ClientStore(engine)
        self.registrations = RegistrationStore(engine, self.committer)
        self.audit = AuditStore(engine, self.committer)
        self.registry = RegistryStore(engine)
        self.pools = PoolStore(engine)
        self.users = UserStore(engine)
        self.oidc = OidcGrantStore(engine)

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
        return cls(engine, writer=make_writer(url, sqlite_synchronous=sqlite_synchronous), observe=observe)

    async def write(self, work: Callable[[Tx], R]) -> R:
        """Run ``work(tx)`` in the next group-commit transaction, in a savepoint of its own: the one way
        to write. ``tx`` (:class:`~asgate.store.tx.Tx`) has one typed object per aggregate. An
        exception ``work`` raises (a refusal such as a ProblemError, or a failed statement) undoes only
        its own writes and is raised here; the other work of the batch commits."""
        outcome: _Outcome[R] = await self.committer.submit(_run_work, work)  # type: ignore[arg-type]
        if outcome.error is not None:
            raise outcome.error
        return outcome.value  # type: ignore[return-value]

    async def write_many(self, work: Callable[[Tx, list[A]], list[R]], item: A) -> R:
        """Apply ``item`` with ``work(tx, items)`` together with the other items submitted to the same
        ``work`` for the next group-commit transaction (set-based: one query for a whole batch of
        heartbeats); ``work`` returns one result per item, in order. No savepoint: an exception fails
        every item of the batch, and the group committer then retries each on its own."""
        result: R = await self.committer.submit(_Batched(work), item)
        return result

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


class _Batched(Generic[A, R]):
    """``work`` as the group committer's batch function; equal for equal ``work``, so that
    consecutive items of one script share a call (bound methods are new objects on each access)."""

    __slots__ = ("work",)

    def __init__(self, work: Callable[[Tx, list[A]], list[R]]) -> None:
        self.work = work

    def __call__(self, conn: Connection, items: list[A]) -> list[R]:
        return self.work(Tx(conn), items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Batched) and other.work == self.work

    def __hash__(self) -> int:
        return hash(self.work)


class _Outcome(Generic[R]):
    __slots__ = ("error", "value")

    def __init__(self, value: R | None = None, error: Exception | None = None) -> None:
        self.value = value
        self.error = error


def _run_work(conn: Connection, items: list[Callable[[Tx], object]]) -> list[_Outcome[object]]:
    results: list[_Outcome[object]] = []
    for work in items:
        savepoint = conn.begin_nested()
        try:
            value = work(Tx(conn))
        except Exception as error:  # noqa: BLE001 - a refusal or a failure: undo this work only
            savepoint.rollback()
            results.append(_Outcome(error=error))
        else:
            savepoint.commit()
            results.append(_Outcome(value))
    return results
