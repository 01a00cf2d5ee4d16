"""The set of revoked access tokens every token check consults, and how it follows the store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asgate.auth.revocation import Revocations
from asgate.store.grants_oidc import Revoked
from asgate.system.runtime import Runtime


async def test_a_poll_learns_new_revocations_and_forgets_expired_ones(rt: Runtime) -> None:
    store = rt.store
    now = [datetime.now(UTC).timestamp()]
    revocations = Revocations(clock=lambda: now[0])
    claims = {"jti": "j-1", "sid": "family-1"}
    assert not revocations.revoked(claims)
    assert await revocations.poll(store.oidc) == 0
    at = datetime.fromtimestamp(now[0], UTC)
    await store.write(lambda tx: tx.grants_oidc.revoke_access("j-1", at, at + timedelta(minutes=5)))
    assert await revocations.poll(store.oidc) == 1
    assert revocations.revoked(claims) and revocations.revoked({"jti": "j-1"})
    assert not revocations.revoked({"jti": "j-2", "sid": "family-2"})
    # A whole login, by the sid its access tokens carry.
    learnt = [Revoked("sid", "family-2", at, at + timedelta(minutes=5))]
    await store.write(lambda tx: tx.grants_oidc.add_revocations(learnt))
    await revocations.poll(store.oidc)
    assert revocations.revoked({"jti": "j-2", "sid": "family-2"}) and len(revocations) == 2
    # Recorded twice (a split access server copying the control plane's): no error, no duplicate.
    assert await store.write(lambda tx: tx.grants_oidc.add_revocations(learnt)) == 0
    # Expired tokens need no revocation: forgotten at the next sweep.
    now[0] += 600
    revocations.sweep()
    assert len(revocations) == 0 and not revocations.revoked(claims)


async def test_a_revocation_committed_late_is_still_seen(rt: Runtime) -> None:
    store = rt.store
    now = datetime.now(UTC)
    revocations = Revocations()
    await store.write(lambda tx: tx.grants_oidc.revoke_access("j-new", now, now + timedelta(minutes=5)))
    await revocations.poll(store.oidc)
    # Written with an earlier time than one already seen (a transaction that committed later).
    await store.write(
        lambda tx: tx.grants_oidc.revoke_access(
            "j-late", now - timedelta(seconds=3), now + timedelta(minutes=5)
        )
    )
    await revocations.poll(store.oidc)
    assert revocations.revoked({"jti": "j-late"})
