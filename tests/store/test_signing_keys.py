"""The signing-key aggregate on every backend: one key set ever created, a generation that grows with
every change (what every process polls), keys listed by creation, removal."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from asgate.store import Store
from asgate.store.signing_keys import KeySetExistsError, StoredKey

T0 = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)


def _key(kid: str, at: datetime, alg: str = "ES256") -> StoredKey:
    return StoredKey(
        kid=kid,
        alg=alg,
        created_at=at,
        not_before=at + timedelta(seconds=5),
        public_jwk={"kty": "EC", "kid": kid},
        sealed_key=b"\x01" + kid.encode() * 3,
    )


async def test_the_first_key_set_is_created_once(store: Store) -> None:
    assert await store.signing_keys.generation() is None
    assert await store.signing_keys.load() == (None, [])
    first = [_key("a", T0), _key("b", T0 + timedelta(microseconds=1), "RS256")]
    await store.write(lambda tx: tx.signing_keys.create_set(first))
    with pytest.raises(KeySetExistsError):  # a second process's attempt: it loads the first set instead
        await store.write(lambda tx: tx.signing_keys.create_set([_key("c", T0)]))
    assert await store.signing_keys.load() == (1, first)


async def test_concurrent_creations_leave_one_key_set(store: Store) -> None:
    attempts = [
        store.write(lambda tx, kid=kid: tx.signing_keys.create_set([_key(kid, T0)]))  # type: ignore[misc]
        for kid in ("x", "y", "z")
    ]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    assert sum(outcome is None for outcome in outcomes) == 1
    assert all(isinstance(o, KeySetExistsError) for o in outcomes if o is not None)
    generation, keys = await store.signing_keys.load()
    assert generation == 1 and len(keys) == 1


async def test_every_change_moves_the_generation_and_keys_come_oldest_first(store: Store) -> None:
    await store.write(lambda tx: tx.signing_keys.create_set([_key("b", T0)]))
    newer = _key("a", T0 + timedelta(microseconds=500))  # same second, later: listed after "b"
    await store.write(lambda tx: tx.signing_keys.add(newer))
    assert await store.signing_keys.generation() == 2
    assert [key.kid for key in (await store.signing_keys.load())[1]] == ["b", "a"]
    assert await store.write(lambda tx: tx.signing_keys.remove("b")) is True
    assert await store.write(lambda tx: tx.signing_keys.remove("b")) is False  # nothing: no new generation
    assert await store.signing_keys.load() == (3, [newer])
    assert await store.write(lambda tx: tx.signing_keys.all()) == [newer]
