"""Token introspection (RFC 7662) for resource servers: MC services that receive an MC user's
access token (or a refresh token) and want the IdM's word on it.

Who may ask: a confidential client that authenticates as at the token endpoint (client_secret_basic
or client_secret_post) and holds the scope ``token-introspection`` (``asgate clients add gms-1
--scope token-introspection``). RFC 7662 2.1 requires some authorization so that the endpoint is no
token-scanning oracle; a dedicated scope keeps it off for every client that was not given it.

What it says: ``{"active": false}`` and nothing more for any token that is not live and ours:
malformed, unknown, expired, revoked, another issuer's, or a refresh token whose login ended or
which was rotated (RFC 7662 2.2: no reason given). A live access token gets the standard members
and the MC service IDs; a live refresh token its login's client, subject and scopes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from asgate.auth import jose
from asgate.auth.tokens import TokenError, TokenValidator
from asgate.domain.idm import Client
from asgate.idm import oidc
from asgate.idm.service import OAuthError
from asgate.kernel.claims import MC_ID_CLAIMS
from asgate.store import Store

SCOPE = "token-introspection"
INACTIVE: dict[str, Any] = {"active": False}
# RFC 7662 2.2 members copied from a live access token as they are.
_COPIED = ("scope", "client_id", "sub", "exp", "iat", "nbf", "aud", "iss", "jti", "azp", "auth_time", "acr")


class Introspection:
    def __init__(
        self, store: Store, validator: TokenValidator, issuer: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._validator = validator
        self._issuer = issuer
        self._clock = clock

    async def introspect(self, client: Client, form: Mapping[str, str]) -> dict[str, Any]:
        """RFC 7662 2.1-2.2. ``token_type_hint`` is accepted and not needed: an access token is a
        JWT, a refresh token is not (2.1: the server extends its search past a wrong hint)."""
        if SCOPE not in client.scopes:
            raise OAuthError(
                "unauthorized_client", f"this client may not introspect tokens (it lacks scope {SCOPE})", 403
            )
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        if _is_jwt(token):
            return await self._access_token(token)
        return await self._refresh_token(token)

    async def _access_token(self, token: str) -> dict[str, Any]:
        try:
            principal = await self._validator.validate(token)  # revoked tokens fail here too
        except TokenError:
            return INACTIVE
        if not principal.own:
            return INACTIVE  # another issuer's token: ask that issuer
        claims = principal.claims
        answer: dict[str, Any] = {"active": True, "token_type": "Bearer"}
        answer |= {name: claims[name] for name in _COPIED if name in claims}
        answer |= {name: claims[name] for name in MC_ID_CLAIMS if name in claims}
        if principal.subject != principal.client_id:  # a user's token: name the user too
            user = await self._store.users.get(principal.subject)
            if user is None or user.disabled:
                return INACTIVE
            answer["username"] = user.username
        return answer

    async def _refresh_token(self, token: str) -> dict[str, Any]:
        state = await self._store.oidc.refresh_state(oidc.digest(token))
        if state is None:
            return INACTIVE
        family = state.family
        now = self._clock()
        ends = min(state.expires_at.timestamp(), family.expires_at.timestamp())
        if family.revoked_at is not None or state.rotated_at is not None or ends <= now:
            return INACTIVE
        user = await self._store.users.get(family.user_id)
        if user is None or user.disabled:
            return INACTIVE
        return {
            "active": True,
            "scope": " ".join(family.scopes),
            "client_id": family.client_id,
            "sub": family.user_id,
            "username": user.username,
            "iss": self._issuer,
            "iat": int(state.issued_at.timestamp()),
            "exp": int(ends),
            **user.mc_claims(),
        }


def _is_jwt(token: str) -> bool:
    try:
        jose.parse(token)
    except TokenError:
        return False
    return True
