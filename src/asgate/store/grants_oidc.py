"""OpenID Connect grants of MC users: pending authorization requests, codes, refresh tokens.

Writes go through the unit of work (``tx.grants_oidc``, :class:`GrantsOidcTx`); reads are async
methods of :class:`OidcGrantStore`. Every secret is looked up by its SHA-256 digest (the caller
hashes). Single use is enforced by a conditional statement (``... WHERE used_at IS NULL``, a
``DELETE ... RETURNING``) whose row count decides, so two concurrent redemptions of one code or one
refresh token cannot both succeed on either backend. A refusal is returned, never raised
(:class:`~asgate.idm.models.GrantRejected`): what it wrote (a replay's revocation) must commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Insert, Table, and_, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.dml import ReturningUpdate

from asgate.domain.idm import AuthorizationRequest, CodeGrant, Family, GrantProblem, GrantRejected
from asgate.store.schema_idm import oauth_codes as codes
from asgate.store.schema_idm import oauth_families as families
from asgate.store.schema_idm import oauth_refresh_tokens as refresh
from asgate.store.schema_idm import oauth_requests as requests
from asgate.store.schema_idm import oauth_revocations as revocations

# How long a used code is kept after it stops working: a replay within this time is recognised as a
# replay (and revokes), later it is merely unknown.
KEEP_SPENT = timedelta(hours=1)
# How long a revoked family is kept: at least the longest access-token lifetime
# (``idm_user_token_ttl`` <= 1 day), since its access tokens are refused for as long as its row is.
KEEP_REVOKED = timedelta(days=1)


@dataclass(frozen=True)
class Revoked:
    """A revoked access token (``jti``) or login (``sid``: a family, every access token of it),
    to be refused until ``until``."""

    kind: str  # "jti" or "sid"
    ident: str
    revoked_at: datetime
    until: datetime


@dataclass(frozen=True)
class RefreshState:
    """A refresh token as introspection (RFC 7662) sees it."""

    family: Family
    issued_at: datetime
    expires_at: datetime
    rotated_at: datetime | None


_FAMILY = tuple(families.c)
_CODE_EXPIRES = codes.c.expires_at.label("code_expires_at")
_REFRESH_EXPIRES = refresh.c.expires_at.label("refresh_expires_at")


class OidcGrantStore:
    """The readers (the writers are :class:`GrantsOidcTx`'s)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def refresh_family(self, token_hash: str) -> Family | None:
        """The family of a refresh token (rotated or not), for revocation."""
        async with self._engine.connect() as conn:
            query = select(*_FAMILY).join_from(refresh, families).where(refresh.c.token_hash == token_hash)
            row = (await conn.execute(query)).mappings().first()
        return _family(row) if row else None

    async def refresh_state(self, token_hash: str) -> RefreshState | None:
        async with self._engine.connect() as conn:
            query = (
                select(*_FAMILY, refresh.c.issued_at, _REFRESH_EXPIRES, refresh.c.rotated_at)
                .join_from(refresh, families)
                .where(refresh.c.token_hash == token_hash)
            )
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        return RefreshState(_family(row), row["issued_at"], row["refresh_expires_at"], row["rotated_at"])

    async def revoked_since(self, since: datetime | None, now: datetime) -> list[Revoked]:
        """Revocations recorded at or after ``since`` (``None``: all) whose tokens have not expired."""
        query = select(revocations).where(revocations.c.expires_at > now)
        if since is not None:
            query = query.where(revocations.c.revoked_at >= since)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.order_by(revocations.c.revoked_at))).mappings().all()
        return [Revoked(row["kind"], row["ident"], row["revoked_at"], row["expires_at"]) for row in rows]

    async def families_of(self, user_id: str) -> list[Family]:
        async with self._engine.connect() as conn:
            query = select(families).where(families.c.user_id == user_id).order_by(families.c.auth_time)
            rows = (await conn.execute(query)).mappings().all()
        return [_family(row) for row in rows]


class GrantsOidcTx:
    """OpenID Connect grants inside one unit of work (``tx.grants_oidc``).

    Promises: a pending request, a code and a refresh token work once, even under concurrent use
    (on both backends); a second use of a code or of a rotated refresh token revokes its family and
    the family's access tokens, and the refusal is returned so that the revocation commits; a
    revoked family revokes every access token of it (a ``sid`` revocation).
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # ------------------------------------------------------------ authorization requests

    def save_request(self, handle_hash: str, request: AuthorizationRequest, expires_at: datetime) -> None:
        row = {
            "handle_hash": handle_hash,
            "client_id": request.client_id,
            "redirect_uri": request.redirect_uri,
            "scopes": list(request.scopes),
            "state": request.state,
            "nonce": _nonce_column(request.nonce),
            "code_challenge": request.code_challenge,
            "expires_at": expires_at,
            "response_mode": request.response_mode,
        }
        self._conn.execute(insert(requests).values(**row))

    def take_request(self, handle_hash: str, now: datetime) -> AuthorizationRequest | None:
        """The pending request, deleted as it is read (single use); ``None`` if unknown, used or expired."""
        statement = delete(requests).where(requests.c.handle_hash == handle_hash).returning(*requests.c)
        row = self._conn.execute(statement).mappings().first()
        if row is None or row["expires_at"] <= now:  # a concurrent take won, or too late
            return None
        return AuthorizationRequest(
            client_id=row["client_id"],
            redirect_uri=row["redirect_uri"],
            scopes=tuple(row["scopes"]),
            state=row["state"],
            nonce=row["nonce"] or None,
            code_challenge=row["code_challenge"],
            response_mode=row["response_mode"],
        )

    # ------------------------------------------------------------ authorization codes

    def issue_code(
        self, code_hash: str, family: Family, request: AuthorizationRequest, expires_at: datetime
    ) -> None:
        """Store a code and the (still empty) family its tokens will belong to."""
        self._conn.execute(insert(families).values(**_family_row(family)))
        self._conn.execute(
            insert(codes).values(
                code_hash=code_hash,
                family_id=family.family_id,
                redirect_uri=request.redirect_uri,
                nonce=_nonce_column(request.nonce),
                code_challenge=request.code_challenge,
                expires_at=expires_at,
            )
        )

    def redeem_code(self, code_hash: str, now: datetime) -> CodeGrant | GrantRejected:
        """Use a code once. A second use revokes its family (RFC 6749 4.1.2, 10.5) and, like an
        unknown or expired code, is returned as a :class:`GrantRejected`."""
        query = (
            select(*_FAMILY, codes.c.redirect_uri, codes.c.nonce, codes.c.code_challenge, _CODE_EXPIRES)
            .join_from(codes, families)
            .where(codes.c.code_hash == code_hash)
        )
        row = self._conn.execute(query).mappings().first()
        if row is None:
            return GrantRejected(GrantProblem.UNKNOWN)
        family = _family(row)
        used = self._conn.execute(
            update(codes).where(codes.c.code_hash == code_hash, codes.c.used_at.is_(None)).values(used_at=now)
        )
        if not used.rowcount:
            self._revoke(families.c.family_id == family.family_id, now)
            return GrantRejected(GrantProblem.REUSED, family)
        if row["code_expires_at"] <= now:
            return GrantRejected(GrantProblem.EXPIRED, family)
        if family.revoked_at is not None:
            return GrantRejected(GrantProblem.REVOKED, family)
        return CodeGrant(family, row["redirect_uri"], row["nonce"] or None, row["code_challenge"])

    # ------------------------------------------------------------ refresh tokens

    def add_refresh(self, family_id: str, token_hash: str, now: datetime, expires_at: datetime) -> None:
        self._conn.execute(
            insert(refresh).values(
                token_hash=token_hash, family_id=family_id, issued_at=now, expires_at=expires_at
            )
        )

    def rotate_refresh(
        self, token_hash: str, new_hash: str, now: datetime, expires_at: datetime
    ) -> Family | GrantRejected:
        """Exchange a refresh token for ``new_hash`` in the same family. Presenting a token that was
        already rotated revokes the family (RFC 9700 4.14.2); every refusal is returned as a
        :class:`GrantRejected`."""
        query = (
            select(*_FAMILY, _REFRESH_EXPIRES)
            .join_from(refresh, families)
            .where(refresh.c.token_hash == token_hash)
        )
        row = self._conn.execute(query).mappings().first()
        if row is None:
            return GrantRejected(GrantProblem.UNKNOWN)
        family = _family(row)
        if family.revoked_at is not None:
            return GrantRejected(GrantProblem.REVOKED, family)
        if row["refresh_expires_at"] <= now or family.expires_at <= now:
            return GrantRejected(GrantProblem.EXPIRED, family)
        rotated = self._conn.execute(
            update(refresh)
            .where(refresh.c.token_hash == token_hash, refresh.c.rotated_at.is_(None))
            .values(rotated_at=now)
        )
        if not rotated.rowcount:
            self._revoke(families.c.family_id == family.family_id, now)
            return GrantRejected(GrantProblem.REUSED, family)
        self.add_refresh(family.family_id, new_hash, now, min(expires_at, family.expires_at))
        return family

    # ------------------------------------------------------------ revocation and clean-up

    def revoke_family(self, family_id: str, now: datetime) -> bool:
        """End a login: its refresh tokens and (RFC 7009 2.1) its access tokens. False if it already was."""
        return self._revoke(families.c.family_id == family_id, now) > 0

    def revoke_user(self, user_id: str, now: datetime) -> int:
        """Revoke every live family of a user; how many."""
        return self._revoke(families.c.user_id == user_id, now)

    def delete_user(self, user_id: str, now: datetime) -> None:
        """Delete every family of a user (their codes and refresh tokens cascade); their access
        tokens stay revoked."""
        self._revoke(families.c.user_id == user_id, now)
        self._conn.execute(delete(families).where(families.c.user_id == user_id))

    def revoke_access(self, jti: str, now: datetime, expires_at: datetime) -> bool:
        """RFC 7009 for an access token: refused by ``jti`` until it expires. False if it already was."""
        return self.add_revocations([Revoked("jti", jti, now, expires_at)]) == 1

    def add_revocations(self, items: list[Revoked]) -> int:
        """Record revocations learnt elsewhere (a split access server copies the control plane's);
        those already recorded are skipped (even when a concurrent transaction records them).
        Returns how many were new."""
        statement = _insert_new(self._conn, revocations)
        added = 0
        for item in items:
            row = {
                "kind": item.kind,
                "ident": item.ident,
                "revoked_at": item.revoked_at,
                "expires_at": item.until,
            }
            added += self._conn.execute(statement, row).rowcount or 0
        return added

    def purge(self, now: datetime) -> int:
        """Delete what can no longer be used: expired requests, spent codes, ended families
        (with their refresh tokens), expired refresh tokens. Returns the number of rows deleted."""
        spent = now - KEEP_SPENT
        revoked = now - KEEP_REVOKED
        total = 0
        for statement in (
            delete(requests).where(requests.c.expires_at <= now),
            delete(codes).where(codes.c.expires_at <= spent),
            delete(refresh).where(refresh.c.expires_at <= now),
            delete(families).where(or_(families.c.expires_at <= now, families.c.revoked_at <= revoked)),
            delete(revocations).where(revocations.c.expires_at <= now),
        ):
            total += self._conn.execute(statement).rowcount or 0
        return total

    def _revoke(self, where: object, now: datetime) -> int:
        """Revoke families, and (RFC 7009 2.1) every access token of them: a ``sid`` revocation each."""
        ids = self._conn.execute(_revoke_statement(where, now)).scalars().all()
        if ids:
            self._conn.execute(insert(revocations), _sid_rows(ids, now))
        return len(ids)


def _insert_new(conn: Connection, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` (both backends): a duplicate is skipped without failing
    the transaction (PostgreSQL aborts a transaction at its first error)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def _revoke_statement(where: object, now: datetime) -> ReturningUpdate[tuple[str]]:
    # RETURNING: only the families this statement revoked (a concurrent one may have won a row).
    return (
        update(families)
        .where(and_(where, families.c.revoked_at.is_(None)))  # type: ignore[arg-type]
        .values(revoked_at=now)
        .returning(families.c.family_id)
    )


def _sid_rows(family_ids: Sequence[Any], now: datetime) -> list[dict[str, object]]:
    until = now + KEEP_REVOKED
    return [
        {"kind": "sid", "ident": family_id, "revoked_at": now, "expires_at": until}
        for family_id in family_ids
    ]


def _family_row(family: Family) -> dict[str, object]:
    return {
        "family_id": family.family_id,
        "client_id": family.client_id,
        "user_id": family.user_id,
        "scopes": list(family.scopes),
        "auth_time": family.auth_time,
        "expires_at": family.expires_at,
        "revoked_at": family.revoked_at,
    }


def _family(row: RowMapping) -> Family:
    return Family(
        family_id=row["family_id"],
        client_id=row["client_id"],
        user_id=row["user_id"],
        scopes=tuple(row["scopes"]),
        auth_time=row["auth_time"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )


def _nonce_column(nonce: str | None) -> str:
    """The ``nonce`` columns are NOT NULL; a request without one (OIDC Core 3.1.2.1: optional) is
    stored as the empty string, which a given nonce never is (the request is refused)."""
    return nonce or ""
