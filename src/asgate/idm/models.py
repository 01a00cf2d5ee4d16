"""Wire models of the IdM's answers. The identity records it stores (clients, users, grants) are
:mod:`asgate.domain.idm`'s."""

from __future__ import annotations

from pydantic import ConfigDict

from asgate.kernel.wire import WireModel


class TokenResponse(WireModel):
    """RFC 6749 5.1 (and TS 29.510 ``AccessTokenRsp``); field names are snake_case on the wire."""

    model_config = ConfigDict(alias_generator=None, frozen=True, extra="ignore")

    access_token: str
    token_type: str = "Bearer"  # noqa: S105
    expires_in: int
    scope: str | None = None
    refresh_token: str | None = None
    id_token: str | None = None
