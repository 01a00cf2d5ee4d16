"""MC users (TS 33.180 B.2): credentials and MC service IDs. Their grants live in ``grants_oidc``.

Writes go through the unit of work (``tx.users``, :class:`UsersTx`); reads are async methods of
:class:`UserStore`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from asgate.domain.idm import User
from asgate.kernel.claims import MC_ID_CLAIMS
from asgate.store.grants_oidc import GrantsOidcTx
from asgate.store.schema_idm import mc_users as t


class UserExistsError(Exception):
    pass


class McIdTakenError(Exception):
    """An MC service ID identifies one user only (TS 33.180 B.2.1)."""

    def __init__(self, field: str, value: str, owner: str) -> None:
        super().__init__(f"{field} {value!r} already belongs to user {owner!r}")
        self.field = field
        self.value = value
        self.owner = owner


class UsersTx:
    """MC users inside one unit of work (``tx.users``).

    Promises: a username names one user (:class:`UserExistsError`); an MC service ID belongs to one
    user (:class:`McIdTakenError`); a new password, disabling or removing a user revokes the user's
    logins (``tx.grants_oidc``) in the same transaction.
    """

    __slots__ = ("_conn", "_grants")

    def __init__(self, conn: Connection, grants: GrantsOidcTx) -> None:
        self._conn = conn
        self._grants = grants

    def add(self, user: User) -> User:
        if self._get(t.c.username == user.username) is not None:
            raise UserExistsError(user.username)
        self._check_mc_ids(user)
        try:
            self._conn.execute(insert(t).values(**user.model_dump()))
        except IntegrityError as exc:  # a concurrent add won the race
            raise UserExistsError(user.username) from exc
        return user

    def by_username(self, username: str) -> User | None:
        return self._get(t.c.username == username)

    def update(self, username: str, **changes: Any) -> User | None:
        """Change fields of a user (not ``user_id``); ``None`` if there is no such user. A new
        password or disabling the user revokes every refresh token the user holds, and with them the
        access tokens of those logins (RFC 7009 2.1: refused by every server within the revocation
        bound)."""
        current = self._get(t.c.username == username)
        if current is None:
            return None
        now = datetime.now(UTC)
        updated = current.model_copy(update={**changes, "updated_at": now})
        self._check_mc_ids(updated)
        row = updated.model_dump(exclude={"user_id", "created_at"})
        try:
            self._conn.execute(update(t).where(t.c.user_id == current.user_id).values(**row))
        except IntegrityError as exc:
            raise UserExistsError(updated.username) from exc
        if updated.password_hash != current.password_hash or (updated.disabled and not current.disabled):
            self._grants.revoke_user(current.user_id, now)
        return updated

    def remove(self, username: str) -> bool:
        """Delete a user with every grant (codes, refresh tokens) the user holds."""
        current = self._get(t.c.username == username)
        if current is None:
            return False
        self._grants.delete_user(current.user_id, datetime.now(UTC))
        return bool(self._conn.execute(delete(t).where(t.c.user_id == current.user_id)).rowcount)

    def _get(self, where: Any) -> User | None:
        row = self._conn.execute(select(t).where(where)).mappings().first()
        return _user(row) if row else None

    def _check_mc_ids(self, user: User) -> None:
        wanted = {name: value for name in MC_ID_CLAIMS if (value := getattr(user, name))}
        if not wanted:
            return
        clash = or_(*(t.c[name] == value for name, value in wanted.items()))
        query = select(t).where(clash, t.c.user_id != user.user_id).limit(1)
        row = self._conn.execute(query).mappings().first()
        if row is not None:
            field = next(name for name, value in wanted.items() if row[name] == value)
            raise McIdTakenError(field, wanted[field], row["username"])


class UserStore:
    """Reads of MC users (writes: :class:`UsersTx` through ``store.write``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, user_id: str) -> User | None:
        async with self._engine.connect() as conn:
            return await _get(conn, t.c.user_id == user_id)

    async def by_username(self, username: str) -> User | None:
        async with self._engine.connect() as conn:
            return await _get(conn, t.c.username == username)

    async def all(self) -> list[User]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(t).order_by(t.c.username))).mappings().all()
        return [_user(row) for row in rows]

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(t))).scalar_one())


async def _get(conn: AsyncConnection, where: Any) -> User | None:
    row = (await conn.execute(select(t).where(where))).mappings().first()
    return _user(row) if row else None


def _user(row: RowMapping) -> User:
    return User.model_validate(dict(row))
