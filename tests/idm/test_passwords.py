"""Secret verification: Argon2 off the event loop, bounded, and a cache of recent successes."""

from __future__ import annotations

from asgate.idm.passwords import SecretVerifier, hash_secret


async def test_a_verified_secret_is_remembered_for_its_hash_only() -> None:
    now = [0.0]
    verifier = SecretVerifier(1, ttl=300.0, clock=lambda: now[0])
    stored = hash_secret("s3cret")
    assert not verifier.recently_verified("as-1", "s3cret", stored)
    assert await verifier.verify("as-1", stored, "s3cret", remember=True)
    assert verifier.recently_verified("as-1", "s3cret", stored)
    assert not verifier.recently_verified("as-1", "wrong", stored)
    assert not verifier.recently_verified("as-2", "s3cret", stored)  # per client
    assert not verifier.recently_verified("as-1", "s3cret", hash_secret("s3cret"))  # rotated
    assert not verifier.recently_verified("as-1", "s3cret", stored)  # and forgotten


async def test_the_cache_expires_and_never_holds_failures_or_unremembered_names() -> None:
    now = [0.0]
    verifier = SecretVerifier(2, ttl=300.0, clock=lambda: now[0])
    stored = hash_secret("s3cret")
    assert not await verifier.verify("as-1", stored, "wrong", remember=True)
    assert not verifier.recently_verified("as-1", "wrong", stored)
    assert await verifier.verify("user:alice", stored, "s3cret", remember=False)
    assert not verifier.recently_verified("user:alice", "s3cret", stored)
    assert await verifier.verify("as-1", stored, "s3cret", remember=True)
    now[0] = 301.0
    assert not verifier.recently_verified("as-1", "s3cret", stored)


async def test_an_unknown_client_costs_a_verification_and_is_never_remembered() -> None:
    verifier = SecretVerifier(1)
    assert not await verifier.verify("ghost", None, "anything", remember=True)
    assert not verifier.recently_verified("ghost", "anything", None)
