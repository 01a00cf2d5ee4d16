"""Revoked access tokens (RFC 7009), as every server that checks bearer tokens knows them.

Access tokens are JWTs that the control plane and the SAS verify locally, so revoking one must
reach every process that verifies it. The IdM writes revocations to the store (a token's ``jti``,
or a whole login: its family, which every access token of that login names as ``sid``); each
process keeps the set of revoked identifiers in memory and polls its store for new ones every
``POLL_INTERVAL`` seconds. A check is two set lookups on claims the token already carries, so the
SAS's hot path stays cheap, and an empty set costs one truth test. An access server with a
database of its own (a split deployment) also pulls them from the control plane
(``GET /mcx-registry-sync/v1/revocations``, asgate.access.revocations) every ``POLL_INTERVAL``
and copies them into its database, where its data-plane workers find them.

The bound: a revocation made through this process's IdM applies at once; any other process (a
data-plane worker, another control-plane server, a split access server) refuses the token within
two polls and their round trips — ``REVOCATION_BOUND`` seconds is what docs/security.md promises.
While the store or the control plane cannot be reached the set keeps what it had and the poll
retries.

Polls read every row revoked since the newest one seen minus ``_OVERLAP``, so a revocation whose
transaction committed late (its ``revoked_at`` earlier than one already seen) is still picked up;
adding an identifier twice is harmless. Only the writers' clocks are compared (``revoked_at``
values), never this process's: until a row is seen, every poll reads all rows still in force.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asgate.kernel.background import Background
    from asgate.store.grants_oidc import OidcGrantStore

POLL_INTERVAL = 1.0
REVOCATION_BOUND = 5  # seconds, documented
_OVERLAP = timedelta(seconds=30)


class Revocations:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._jti: dict[str, float] = {}  # identifier -> until (epoch seconds)
        self._sid: dict[str, float] = {}
        self._clock = clock
        self._seen: datetime | None = None
        self._swept = 0.0
        self.any = False  # a plain attribute: the hot path's whole cost while nothing is revoked

    def __len__(self) -> int:
        return len(self._jti) + len(self._sid)

    def revoked(self, claims: Mapping[str, Any]) -> bool:
        """Whether a verified token of our issuer has been revoked (by its ``jti`` or ``sid``)."""
        if not self.any:
            return False
        return claims.get("jti") in self._jti or claims.get("sid") in self._sid

    def knows(self, kind: str, ident: str) -> bool:
        return ident in (self._jti if kind == "jti" else self._sid)

    def add(self, kind: str, ident: str, until: float) -> None:
        table = self._jti if kind == "jti" else self._sid
        table[ident] = max(until, table.get(ident, 0.0))
        self.any = True

    def sweep(self) -> None:
        """Forget identifiers whose tokens have expired anyway."""
        now = self._clock()
        for table in (self._jti, self._sid):
            for ident in [i for i, until in table.items() if until <= now]:
                del table[ident]
        self.any = bool(self._jti or self._sid)

    async def poll(self, store: OidcGrantStore) -> int:
        """Read revocations made since the last poll (all of them the first time); returns how many."""
        now = datetime.fromtimestamp(self._clock(), UTC)
        since = None if self._seen is None else self._seen - _OVERLAP
        found = await store.revoked_since(since, now)
        for item in found:
            self.add(item.kind, item.ident, item.until.timestamp())
            if self._seen is None or item.revoked_at > self._seen:
                self._seen = item.revoked_at
        if self._clock() - self._swept > 60:
            self._swept = self._clock()
            self.sweep()
        return len(found)

    async def follow(self, store: OidcGrantStore, background: Background) -> None:
        """Poll until the process stops."""
        await background.every(POLL_INTERVAL, lambda: self.poll(store), "reading revoked tokens")
