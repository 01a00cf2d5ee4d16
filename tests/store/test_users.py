"""The user store, on every backend: uniqueness, and the revocation of a user's grants when the user
changes (the grants themselves: test_grants_oidc.py)."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asgate.domain.idm import AuthorizationRequest, Client, Family, GrantProblem, GrantRejected, User
from asgate.store import McIdTakenError, Store, UserExistsError
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


def _issue_code(tx: Tx, code: str, family: Family) -> None:
    tx.grants_oidc.issue_code(code, family, REQUEST, LATER)


async def test_password_change_and_disabling_revoke_the_users_families(store: Store, alice: User) -> None:
    first, second = _family(alice), _family(alice)
    for code, family in (("c0", first), ("c1", second)):
        await store.write(functools.partial(_issue_code, code=code, family=family))
    await store.write(lambda tx: tx.users.update("alice", display_name="A"))  # nothing to revoke for
    assert all(f.revoked_at is None for f in await store.oidc.families_of(alice.user_id))
    await store.write(lambda tx: tx.users.update("alice", password_hash="$argon2id$new"))
    assert all(f.revoked_at is not None for f in await store.oidc.families_of(alice.user_id))
    third = _family(alice)
    await store.write(lambda tx: tx.grants_oidc.issue_code("c3", third, REQUEST, LATER))
    await store.write(lambda tx: tx.users.update("alice", disabled=True))
    assert all(f.revoked_at is not None for f in await store.oidc.families_of(alice.user_id))
    # ... and the access tokens of each login (their sid), for every server that checks tokens.
    revoked = await store.oidc.revoked_since(None, datetime.now(UTC))
    assert sorted((r.kind, r.ident) for r in revoked) == sorted(
        ("sid", f.family_id) for f in (first, second, third)
    )


async def test_removing_a_user_or_a_client_removes_their_grants(store: Store, alice: User) -> None:
    family = _family(alice)
    await store.write(lambda tx: tx.grants_oidc.issue_code("code1", family, REQUEST, LATER))
    await store.write(lambda tx: tx.grants_oidc.add_refresh(family.family_id, "r1", NOW, LATER))
    assert await store.write(lambda tx: tx.users.remove("alice"))
    assert await store.users.get(alice.user_id) is None and await store.oidc.refresh_family("r1") is None
    assert await store.write(lambda tx: tx.grants_oidc.redeem_code("code1", NOW)) == GrantRejected(
        GrantProblem.UNKNOWN
    )
    assert not await store.write(lambda tx: tx.users.remove("alice"))
    # The removed user's access tokens stay refused (their login's sid) until they expire.
    revoked = await store.oidc.revoked_since(None, datetime.now(UTC))
    assert [(r.kind, r.ident) for r in revoked] == [("sid", family.family_id)]
    bob = await store.write(lambda tx: tx.users.add(_user("bob")))
    await store.write(lambda tx: tx.grants_oidc.issue_code("code2", _family(bob), REQUEST, LATER))
    await store.write(lambda tx: tx.grants_oidc.save_request("h", REQUEST, LATER))
    assert await store.write(lambda tx: tx.clients.remove("console-1"))  # foreign keys cascade
    assert await store.oidc.families_of(bob.user_id) == []
    assert await store.write(lambda tx: tx.grants_oidc.take_request("h", NOW)) is None
