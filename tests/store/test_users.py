"""The user and OpenID Connect grant stores, on every backend: uniqueness, single use under
concurrency, replay detection, revocation, clean-up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asgate.domain.idm import AuthorizationRequest, Client, Family, GrantProblem, GrantRejectedError, User
from asgate.store import McIdTakenError, Store, UserExistsError
from asgate.store.ids import new_id

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


def _user(username: str = "alice", **kw: Any) -> User:
    values: dict[str, Any] = {
        "user_id": new_id(),
        "username": username,
        "password_hash": "$argon2id$fake",
        "mcptt_id": f"{username}@mc.example",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return User(**{**values, **kw})


@pytest.fixture
async def alice(store: Store) -> User:
    await store.write(
        lambda tx: tx.clients.add(Client(client_id="console-1", created_at=NOW, updated_at=NOW))
    )
    return await store.write(lambda tx: tx.users.add(_user()))


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


async def test_users_round_trip(store: Store, alice: User) -> None:
    assert await store.users.get(alice.user_id) == alice
    assert await store.users.by_username("alice") == alice
    assert await store.users.by_username("Alice") is None  # user names are exact
    bob = await store.write(
        lambda tx: tx.users.add(_user("bob", mcvideo_id="bob.v@mc.example", display_name="Bob"))
    )
    assert [u.username for u in await store.users.all()] == ["alice", "bob"]
    assert (await store.users.get(bob.user_id)).mc_claims() == {  # type: ignore[union-attr]
        "mcptt_id": "bob@mc.example",
        "mcvideo_id": "bob.v@mc.example",
    }
    assert await store.users.count() == 2


async def test_user_names_and_mc_ids_are_unique(store: Store, alice: User) -> None:
    with pytest.raises(UserExistsError):
        await store.write(lambda tx: tx.users.add(_user("alice", mcptt_id="other@mc.example")))
    with pytest.raises(McIdTakenError) as caught:
        await store.write(lambda tx: tx.users.add(_user("bob", mcptt_id="alice@mc.example")))
    assert (caught.value.field, caught.value.owner) == ("mcptt_id", "alice")
    bob = await store.write(lambda tx: tx.users.add(_user("bob", mcdata_id="bob@mc.example")))
    with pytest.raises(McIdTakenError):
        await store.write(lambda tx: tx.users.update("bob", mcptt_id="alice@mc.example"))
    assert (await store.users.get(bob.user_id)).mcptt_id == "bob@mc.example"  # type: ignore[union-attr]
    # Users without an MC ID do not clash (NULLs are distinct on both backends).
    await store.write(lambda tx: tx.users.add(_user("c1", mcptt_id=None)))
    await store.write(lambda tx: tx.users.add(_user("c2", mcptt_id=None)))


async def test_update_keeps_identity_and_clears_ids(store: Store, alice: User) -> None:
    updated = await store.write(lambda tx: tx.users.update("alice", mcptt_id=None, display_name="Alice A."))
    assert updated is not None and updated.user_id == alice.user_id and updated.created_at == alice.created_at
    assert updated.mcptt_id is None and updated.updated_at > alice.updated_at
    assert await store.users.get(alice.user_id) == updated
    assert await store.write(lambda tx: tx.users.update("nobody", display_name="x")) is None


async def test_an_authorization_request_is_taken_once(store: Store, alice: User) -> None:
    await store.oidc.save_request("h1", REQUEST, LATER)
    taken = await asyncio.gather(*(store.oidc.take_request("h1", NOW) for _ in range(5)))
    assert [t for t in taken if t is not None] == [REQUEST]
    await store.oidc.save_request("h2", REQUEST, LATER)
    assert await store.oidc.take_request("h2", LATER) is None  # expired
    assert await store.oidc.take_request("h2", NOW) is None  # and gone


async def test_a_code_is_redeemed_once_and_a_replay_revokes_its_family(store: Store, alice: User) -> None:
    family = _family(alice)
    await store.oidc.issue_code("code1", family, REQUEST, LATER)
    grant = await store.oidc.redeem_code("code1", NOW)
    assert grant.family == family and grant.nonce == "n" and grant.code_challenge == "c" * 43
    await store.oidc.add_refresh(family.family_id, "r1", NOW, LATER)
    with pytest.raises(GrantRejectedError) as caught:
        await store.oidc.redeem_code("code1", NOW)
    assert caught.value.problem is GrantProblem.REUSED
    with pytest.raises(GrantRejectedError) as caught:
        await store.oidc.rotate_refresh("r1", "r2", NOW, LATER)
    assert caught.value.problem is GrantProblem.REVOKED


async def test_concurrent_redemptions_of_a_code_let_one_through(store: Store, alice: User) -> None:
    await store.oidc.issue_code("code1", _family(alice), REQUEST, LATER)
    results = await asyncio.gather(
        *(store.oidc.redeem_code("code1", NOW) for _ in range(4)), return_exceptions=True
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(r.problem is GrantProblem.REUSED for r in results if isinstance(r, GrantRejectedError))


@pytest.mark.parametrize(
    ("code", "at", "problem"), [("nope", NOW, GrantProblem.UNKNOWN), ("code1", LATER, GrantProblem.EXPIRED)]
)
async def test_unknown_and_expired_codes(
    store: Store, alice: User, code: str, at: datetime, problem: GrantProblem
) -> None:
    await store.oidc.issue_code("code1", _family(alice), REQUEST, LATER)
    with pytest.raises(GrantRejectedError) as caught:
        await store.oidc.redeem_code(code, at)
    assert caught.value.problem is problem


async def test_refresh_rotation_and_reuse_detection(store: Store, alice: User) -> None:
    family = _family(alice)
    await store.oidc.issue_code("code1", family, REQUEST, LATER)
    await store.oidc.add_refresh(family.family_id, "r1", NOW, LATER)
    assert (await store.oidc.rotate_refresh("r1", "r2", NOW, LATER)).family_id == family.family_id
    assert (await store.oidc.rotate_refresh("r2", "r3", NOW, LATER)).family_id == family.family_id
    with pytest.raises(GrantRejectedError) as caught:
        await store.oidc.rotate_refresh("r1", "r4", NOW, LATER)  # r1 was rotated: a replay
    assert caught.value.problem is GrantProblem.REUSED
    with pytest.raises(GrantRejectedError) as caught:
        await store.oidc.rotate_refresh("r3", "r5", NOW, LATER)  # the newest died with the family
    assert caught.value.problem is GrantProblem.REVOKED
    assert (await store.oidc.refresh_family("r3")).revoked_at == NOW  # type: ignore[union-attr]


async def test_a_refresh_token_never_outlives_its_family(store: Store, alice: User) -> None:
    family = _family(alice, expires_at=NOW + timedelta(minutes=2))
    await store.oidc.issue_code("code1", family, REQUEST, LATER)
    await store.oidc.add_refresh(family.family_id, "r1", NOW, LATER)
    await store.oidc.rotate_refresh("r1", "r2", NOW, NOW + timedelta(hours=8))
    with pytest.raises(GrantRejectedError) as caught:
        await store.oidc.rotate_refresh("r2", "r3", NOW + timedelta(minutes=3), LATER)
    assert caught.value.problem is GrantProblem.EXPIRED


async def test_password_change_and_disabling_revoke_the_users_families(store: Store, alice: User) -> None:
    first, second = _family(alice), _family(alice)
    for i, family in enumerate((first, second)):
        await store.oidc.issue_code(f"c{i}", family, REQUEST, LATER)
    await store.write(lambda tx: tx.users.update("alice", display_name="A"))  # nothing to revoke for
    assert all(f.revoked_at is None for f in await store.oidc.families_of(alice.user_id))
    await store.write(lambda tx: tx.users.update("alice", password_hash="$argon2id$new"))
    assert all(f.revoked_at is not None for f in await store.oidc.families_of(alice.user_id))
    third = _family(alice)
    await store.oidc.issue_code("c3", third, REQUEST, LATER)
    await store.write(lambda tx: tx.users.update("alice", disabled=True))
    assert all(f.revoked_at is not None for f in await store.oidc.families_of(alice.user_id))
    # ... and the access tokens of each login (their sid), for every server that checks tokens.
    revoked = await store.oidc.revoked_since(None, datetime.now(UTC))
    assert sorted((r.kind, r.ident) for r in revoked) == sorted(
        ("sid", f.family_id) for f in (first, second, third)
    )


async def test_removing_a_user_or_a_client_removes_their_grants(store: Store, alice: User) -> None:
    family = _family(alice)
    await store.oidc.issue_code("code1", family, REQUEST, LATER)
    await store.oidc.add_refresh(family.family_id, "r1", NOW, LATER)
    assert await store.write(lambda tx: tx.users.remove("alice"))
    assert await store.users.get(alice.user_id) is None and await store.oidc.refresh_family("r1") is None
    with pytest.raises(GrantRejectedError):
        await store.oidc.redeem_code("code1", NOW)
    assert not await store.write(lambda tx: tx.users.remove("alice"))
    # The removed user's access tokens stay refused (their login's sid) until they expire.
    revoked = await store.oidc.revoked_since(None, datetime.now(UTC))
    assert [(r.kind, r.ident) for r in revoked] == [("sid", family.family_id)]
    bob = await store.write(lambda tx: tx.users.add(_user("bob")))
    await store.oidc.issue_code("code2", _family(bob), REQUEST, LATER)
    await store.oidc.save_request("h", REQUEST, LATER)
    assert await store.write(lambda tx: tx.clients.remove("console-1"))  # foreign keys cascade
    assert await store.oidc.families_of(bob.user_id) == []
    assert await store.oidc.take_request("h", NOW) is None


async def test_purge_deletes_only_what_can_no_longer_be_used(store: Store, alice: User) -> None:
    live, ended = _family(alice), _family(alice, expires_at=NOW + timedelta(hours=1))
    await store.oidc.issue_code("live", live, REQUEST, LATER)
    await store.oidc.issue_code("ended", ended, REQUEST, LATER)
    await store.oidc.add_refresh(live.family_id, "r-live", NOW, NOW + timedelta(hours=8))
    await store.oidc.add_refresh(live.family_id, "r-old", NOW, NOW + timedelta(minutes=30))
    await store.oidc.save_request("h", REQUEST, LATER)
    deleted = await store.oidc.purge(NOW + timedelta(hours=2))
    # The request, both codes (spent an hour after expiry), r-old, and the ended family.
    assert deleted == 5
    assert await store.oidc.refresh_family("r-live") is not None
    assert [f.family_id for f in await store.oidc.families_of(alice.user_id)] == [live.family_id]
