"""The token-signing keys of every process (issue 10 §2): one key set in the database, so that every
process publishes the same JWKS and signs with the same keys.

The store keeps what it is given: the private key arrives already sealed (encrypted with the
key-encryption key, :mod:`asgate.idm.keystore`), never in the clear. ``signing_key_sets`` holds one
row whose ``generation`` grows with every change, so a process notices a rotation by reading one
integer; the row is inserted exactly once (its primary key), by whichever process creates the first
key set, so two processes starting at once on an empty database create one key set between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    LargeBinary,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from asgate.store.schema import JsonType, UtcDateTime, metadata

_SET_ID = 1

signing_key_sets = Table(
    "signing_key_sets",
    metadata,
    Column("set_id", Integer, primary_key=True, autoincrement=False),  # always 1: one key set
    Column("generation", BigInteger, nullable=False),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),  # RFC 7638 thumbprint
    Column("alg", String(8), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("not_before", UtcDateTime(), nullable=False),  # signs from then on (published before)
    Column("public_jwk", JsonType, nullable=False),
    # nonce || AES-256-GCM(PKCS#8 DER) with AAD = kid; never the key in the clear
    Column("sealed_key", LargeBinary, nullable=False),
)


class KeySetExistsError(Exception):
    """Another process created the key set first."""


@dataclass(frozen=True)
class StoredKey:
    kid: str
    alg: str
    created_at: datetime
    not_before: datetime
    public_jwk: dict[str, str]
    sealed_key: bytes


def _key(row: RowMapping) -> StoredKey:
    return StoredKey(
        kid=row["kid"],
        alg=row["alg"],
        created_at=row["created_at"],
        not_before=row["not_before"],
        public_jwk=dict(row["public_jwk"]),
        sealed_key=bytes(row["sealed_key"]),
    )


def _row(key: StoredKey) -> dict[str, object]:
    return {
        "kid": key.kid,
        "alg": key.alg,
        "created_at": key.created_at,
        "not_before": key.not_before,
        "public_jwk": key.public_jwk,
        "sealed_key": key.sealed_key,
    }


class SigningKeysTx:
    """The key set inside a write transaction: ``tx.signing_keys``."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def create_set(self, keys: list[StoredKey]) -> None:
        """Create the first key set; :class:`KeySetExistsError` when another process created one first
        (on PostgreSQL this waits for that process's transaction; the caller loads its key set)."""
        try:
            self._conn.execute(insert(signing_key_sets).values(set_id=_SET_ID, generation=1))
        except IntegrityError as exc:
            raise KeySetExistsError from exc
        self._conn.execute(insert(signing_keys), [_row(key) for key in keys])

    def add(self, key: StoredKey) -> None:
        self._conn.execute(insert(signing_keys).values(**_row(key)))
        self._bump()

    def remove(self, kid: str) -> bool:
        removed = self._conn.execute(delete(signing_keys).where(signing_keys.c.kid == kid)).rowcount > 0
        if removed:
            self._bump()
        return removed

    def all(self) -> list[StoredKey]:
        return _all(self._conn)

    def _bump(self) -> None:
        t = signing_key_sets.c
        self._conn.execute(
            update(signing_key_sets).where(t.set_id == _SET_ID).values(generation=t.generation + 1)
        )


def _all(conn: Connection) -> list[StoredKey]:
    query = select(signing_keys).order_by(signing_keys.c.created_at, signing_keys.c.kid)
    return [_key(row) for row in conn.execute(query).mappings()]


def _generation(conn: Connection) -> int | None:
    t = signing_key_sets.c
    value = conn.execute(select(t.generation).where(t.set_id == _SET_ID)).scalar()
    return None if value is None else int(value)


def _load(conn: Connection) -> tuple[int | None, list[StoredKey]]:
    return _generation(conn), _all(conn)


class SigningKeyStore:
    """Readers: the key set's generation (polled every second by every process) and its keys."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def generation(self) -> int | None:
        """``None`` while no key set exists."""
        async with self._engine.connect() as conn:
            return await conn.run_sync(_generation)

    async def load(self) -> tuple[int | None, list[StoredKey]]:
        """The generation and the keys, oldest first. The generation is read first, so keys newer
        than it are at worst loaded again at the next poll, never missed."""
        async with self._engine.connect() as conn:
            return await conn.run_sync(_load)
