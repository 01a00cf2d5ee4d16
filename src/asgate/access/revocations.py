"""How an access server learns of revoked access tokens from the control plane (RFC 7009; see
:mod:`asgate.auth.revocation` for the whole design and its bound).

Every ``POLL_INTERVAL`` it asks the registry's sync API for the revocations made since the newest
one it has seen (less an overlap, so that a late commit is not missed), adds the new ones to the
set the gate checks, and copies them into its own database, where its data-plane workers (which
poll that database) find them. In ``asgate up`` the registry shares the database, so the copies
are already there and nothing new is written.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from asgate.auth.revocation import POLL_INTERVAL, Revocations
from asgate.idm.internal import InternalTokens
from asgate.kernel.background import Background
from asgate.store import Store
from asgate.store.grants_oidc import Revoked

_OVERLAP = timedelta(seconds=30)


class RevocationPuller:
    def __init__(
        self,
        revocations: Revocations,
        store: Store,
        http: httpx.AsyncClient,
        registry_url: str,
        tokens: InternalTokens,
    ) -> None:
        self.revocations = revocations
        self.store = store
        self.http = http
        self.url = f"{registry_url.rstrip('/')}/mcx-registry-sync/v1/revocations"
        self.tokens = tokens
        self._seen: datetime | None = None

    async def pull(self) -> int:
        """One round; returns how many revocations were new to this server."""
        params = {"since": (self._seen - _OVERLAP).isoformat()} if self._seen else {}
        headers = {"Authorization": f"Bearer {await self.tokens.token(self.http)}"}
        response = await self.http.get(self.url, params=params, headers=headers, timeout=5.0)
        response.raise_for_status()
        new = []
        for item in _items(response.json()):
            if self._seen is None or item.revoked_at > self._seen:
                self._seen = item.revoked_at
            if not self.revocations.knows(item.kind, item.ident):
                self.revocations.add(item.kind, item.ident, item.until.timestamp())
                new.append(item)
        if new:
            await self.store.write(lambda tx: tx.grants_oidc.add_revocations(new))
        return len(new)

    async def run(self, background: Background) -> None:
        """Pull until the role stops."""
        await background.every(POLL_INTERVAL, self.pull, "pulling revoked tokens")


def _items(body: Any) -> list[Revoked]:
    """The sync API's ``{"revocations": [{"kind", "id", "revokedAt", "expiresAt"}]}``."""
    return [
        Revoked(
            kind=str(item["kind"]) if item["kind"] in ("jti", "sid") else "jti",
            ident=str(item["id"]),
            revoked_at=datetime.fromisoformat(item["revokedAt"]),
            until=datetime.fromisoformat(item["expiresAt"]),
        )
        for item in body["revocations"]
    ]
