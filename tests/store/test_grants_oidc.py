"""Contract of the OpenID Connect grants aggregate (``tx.grants_oidc``, ``store.oidc``), on every
backend: single use under concurrency, replay detection whose revocation commits although the
grant is refused, rotation, revocation, clean-up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asgate.domain.idm import (
    AuthorizationRequest,
    Client,
    CodeGrant,
    Family,
    GrantProblem,
    GrantRejected,
    User,
)
from asgate.store import Store
from asgate.store.grants_oidc import Revoked
from asgate.store.ids import new_id
from asgate.store.tx import Tx

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)
REQUEST = AuthorizationRequest(
    client_id="console-1",
    redirect_uri="http://127.0.0.1:5000/cb",
    scopes=("openid", "3gpp:mc:ptt_service"),
    state="s",
    nonce="n",
    code_challenge="c" * 43,
)


@pytest.fixture
async def alice(store: Store) -> User:
    await store.write(
        lambda tx: tx.clients.add(Client(client_id="console-1", created_at=NOW, updated_at=NOW))
    )
    user = User(
        user_id=new_id(),
        username="alice",
        password_hash="$argon2id$fake",
        mcptt_id="alice@mc.example",
        created_at=NOW,
        updated_at=NOW,
    )
    return await store.write(lambda tx: tx.users.add(user))


def _family(user: User, **kw: Any) -> Family:
    values: dict[str, Any] = {
        "family_id": new_id(),
        "client_id": "console-1",
        "user_id": user.user_id,
        "scopes": ("openid", "3gpp:mc:ptt_service"),
        "auth_time": NOW,
        "expires_at": NOW + timedelta(days=7),
    }
    return Family(**{**values, **kw})


async def _issue(store: Store, code: str, family: Family, refresh: str | None = None) -> None:
    def issue(tx: Tx) -> None:
        tx.grants_oidc.issue_code(code, family, REQUEST, LATER)
        if refresh is not None:
            tx.grants_oidc.add_refresh(family.family_id, refresh, NOW, LATER)

    await store.write(issue)


async def _redeem(store: Store, code: str, at: datetime = NOW) -> CodeGrant | GrantRejected:
    return await store.write(lambda tx: tx.grants_oidc.redeem_code(code, at))


async def _rotate(
    store: Store, old: str, new: str, at: datetime = NOW, until: datetime = LATER
) -> Family | GrantRejected:
    return await store.write(lambda tx: tx.grants_oidc.rotate_refresh(old, new, at, until))


def _revoked(family: Family, at: datetime = NOW) -> Family:
    return Family(**{**family.__dict__, "revoked_at": at})


async def _sids(store: Store) -> list[str]:
    return sorted(r.ident for r in await store.oidc.revoked_since(None, NOW) if r.kind == "sid")


async def test_an_authorization_request_is_taken_once(store: Store, alice: User) -> None:
    await store.write(lambda tx: tx.grants_oidc.save_request("h1", REQUEST, LATER))
    taken = await asyncio.gather(
        *(store.write(lambda tx: tx.grants_oidc.take_request("h1", NOW)) for _ in range(5))
    )
    assert [t for t in taken if t is not None] == [REQUEST]
    await store.write(lambda tx: tx.grants_oidc.save_request("h2", REQUEST, LATER))
    assert await store.write(lambda tx: tx.grants_oidc.take_request("h2", LATER)) is None  # expired
    assert await store.write(lambda tx: tx.grants_oidc.take_request("h2", NOW)) is None  # and gone
    # A request without a nonce (optional for the code flow) comes back without one.
    bare = AuthorizationRequest(**{**REQUEST.__dict__, "nonce": None, "response_mode": "form_post"})
    await store.write(lambda tx: tx.grants_oidc.save_request("h3", bare, LATER))
    assert await store.write(lambda tx: tx.grants_oidc.take_request("h3", NOW)) == bare


async def test_a_code_is_redeemed_once_and_a_replay_revokes_its_family(store: Store, alice: User) -> None:
    family = _family(alice)
    await _issue(store, "code1", family, refresh="r1")
    grant = await _redeem(store, "code1")
    assert grant == CodeGrant(family, REQUEST.redirect_uri, "n", "c" * 43)
    # RFC 6749 4.1.2 / 10.5: the replay is refused, and the revocation it caused is committed
    # (read back on another connection): the refresh token and access tokens of the login die.
    assert await _redeem(store, "code1") == GrantRejected(GrantProblem.REUSED, family)
    (stored,) = await store.oidc.families_of(alice.user_id)
    assert stored.revoked_at == NOW
    assert await _sids(store) == [family.family_id]
    revoked = _revoked(family)
    assert await _rotate(store, "r1", "r2") == GrantRejected(GrantProblem.REVOKED, revoked)
    # A third presentation is refused the same way, and revokes nothing more.
    assert await _redeem(store, "code1") == GrantRejected(GrantProblem.REUSED, revoked)
    assert await _sids(store) == [family.family_id]


async def test_a_refusal_raised_instead_of_returned_would_lose_the_revocation(
    store: Store, alice: User
) -> None:
    """Why the refusal is a value: a unit of work that raises is rolled back, revocation included."""
    family = _family(alice)
    await _issue(store, "code1", family)
    await _redeem(store, "code1")

    def raising(tx: Tx) -> None:
        outcome = tx.grants_oidc.redeem_code("code1", NOW)
        assert isinstance(outcome, GrantRejected)
        raise RuntimeError(outcome.problem)

    with pytest.raises(RuntimeError):
        await store.write(raising)
    assert await _sids(store) == []
    assert await _redeem(store, "code1") == GrantRejected(GrantProblem.REUSED, family)
    assert await _sids(store) == [family.family_id]


async def test_concurrent_redemptions_of_a_code_let_one_through(store: Store, alice: User) -> None:
    family = _family(alice)
    await _issue(store, "code1", family)
    results = await asyncio.gather(*(_redeem(store, "code1") for _ in range(4)))
    assert sum(isinstance(r, CodeGrant) for r in results) == 1
    refused = [r for r in results if isinstance(r, GrantRejected)]
    assert len(refused) == 3 and {r.problem for r in refused} == {GrantProblem.REUSED}
    assert await _sids(store) == [family.family_id]


async def test_concurrent_redemptions_through_two_stores_let_one_through(
    store: Store, alice: User, database: dict[str, Any]
) -> None:
    """Two processes (two stores, two group committers) over one database."""
    other = await Store.open(database["database_url"], schema=database.get("database_schema"))
    try:
        await _issue(store, "code1", _family(alice))
        results = await asyncio.gather(*(_redeem(s, "code1") for s in (store, other, store, other)))
    finally:
        await other.close()
    assert sum(isinstance(r, CodeGrant) for r in results) == 1


@pytest.mark.parametrize(
    ("code", "at", "problem"), [("nope", NOW, GrantProblem.UNKNOWN), ("code1", LATER, GrantProblem.EXPIRED)]
)
async def test_unknown_and_expired_codes(
    store: Store, alice: User, code: str, at: datetime, problem: GrantProblem
) -> None:
    await _issue(store, "code1", _family(alice))
    outcome = await _redeem(store, code, at)
    assert isinstance(outcome, GrantRejected) and outcome.problem is problem
    assert await _sids(store) == []  # refused, but nothing to revoke


async def test_a_code_of_a_revoked_family_is_refused(store: Store, alice: User) -> None:
    family = _family(alice)
    await _issue(store, "code1", family)
    assert await store.write(lambda tx: tx.grants_oidc.revoke_family(family.family_id, NOW))
    assert not await store.write(lambda tx: tx.grants_oidc.revoke_family(family.family_id, NOW))
    assert await _redeem(store, "code1") == GrantRejected(GrantProblem.REVOKED, _revoked(family))


async def test_refresh_rotation_and_reuse_detection(store: Store, alice: User) -> None:
    family = _family(alice)
    await _issue(store, "code1", family, refresh="r1")
    assert await _rotate(store, "r1", "r2") == family
    assert await _rotate(store, "r2", "r3") == family
    state = await store.oidc.refresh_state("r1")
    assert state is not None and state.rotated_at == NOW
    # RFC 9700 4.14.2: r1 was rotated, so this is a replay: refused, and the family revoked (committed).
    assert await _rotate(store, "r1", "r4") == GrantRejected(GrantProblem.REUSED, family)
    assert await store.oidc.refresh_family("r4") is None
    assert await _sids(store) == [family.family_id]
    # The newest token died with the family.
    assert await _rotate(store, "r3", "r5") == GrantRejected(GrantProblem.REVOKED, _revoked(family))
    assert (await store.oidc.refresh_family("r3")).revoked_at == NOW  # type: ignore[union-attr]
    unknown = await _rotate(store, "nope", "r6")
    assert unknown == GrantRejected(GrantProblem.UNKNOWN)


async def test_a_refresh_token_never_outlives_its_family(store: Store, alice: User) -> None:
    family = _family(alice, expires_at=NOW + timedelta(minutes=2))
    await _issue(store, "code1", family, refresh="r1")
    await _rotate(store, "r1", "r2", NOW, NOW + timedelta(hours=8))
    state = await store.oidc.refresh_state("r2")
    assert state is not None and state.expires_at == family.expires_at
    outcome = await _rotate(store, "r2", "r3", NOW + timedelta(minutes=3))
    assert outcome == GrantRejected(GrantProblem.EXPIRED, family)
    assert await _sids(store) == []


async def test_revocations_are_recorded_once(store: Store, alice: User) -> None:
    until = NOW + timedelta(minutes=5)
    assert await store.write(lambda tx: tx.grants_oidc.revoke_access("j-1", NOW, until))
    assert not await store.write(lambda tx: tx.grants_oidc.revoke_access("j-1", NOW, until))
    learnt = [
        Revoked("jti", "j-1", NOW, until),
        Revoked("sid", "f-2", NOW, until),
        Revoked("sid", "f-3", NOW, until),
    ]
    assert await store.write(lambda tx: tx.grants_oidc.add_revocations(learnt)) == 2
    assert await store.write(lambda tx: tx.grants_oidc.add_revocations(learnt)) == 0

    # A duplicate does not fail the unit of work it is part of (PostgreSQL included).
    def copy(tx: Tx) -> int:
        tx.audit.append("sas", "revocations.copy", "x")
        return tx.grants_oidc.add_revocations(learnt)

    assert await store.write(copy) == 0
    assert [e.action for e in await store.audit.scan()] == ["revocations.copy"]
    assert sorted((r.kind, r.ident) for r in await store.oidc.revoked_since(None, NOW)) == [
        ("jti", "j-1"),
        ("sid", "f-2"),
        ("sid", "f-3"),
    ]
    assert await store.oidc.revoked_since(None, until) == []  # expired ones are not reported


async def test_purge_deletes_only_what_can_no_longer_be_used(store: Store, alice: User) -> None:
    live, ended = _family(alice), _family(alice, expires_at=NOW + timedelta(hours=1))

    def setup(tx: Tx) -> None:
        tx.grants_oidc.issue_code("live", live, REQUEST, LATER)
        tx.grants_oidc.issue_code("ended", ended, REQUEST, LATER)
        tx.grants_oidc.add_refresh(live.family_id, "r-live", NOW, NOW + timedelta(hours=8))
        tx.grants_oidc.add_refresh(live.family_id, "r-old", NOW, NOW + timedelta(minutes=30))
        tx.grants_oidc.save_request("h", REQUEST, LATER)

    await store.write(setup)
    deleted = await store.write(lambda tx: tx.grants_oidc.purge(NOW + timedelta(hours=2)))
    # The request, both codes (spent an hour after expiry), r-old, and the ended family.
    assert deleted == 5
    assert await store.oidc.refresh_family("r-live") is not None
    assert [f.family_id for f in await store.oidc.families_of(alice.user_id)] == [live.family_id]
