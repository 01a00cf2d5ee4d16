"""Identity records the store persists and returns: OAuth2 clients (application servers, external
applications, MC services), MC users, and the OAuth2/OIDC authorization requests, login families and
codes of the IdM's grant flows. They lie below the store (docs/decisions.md "Records below the
store"); the IdM's wire answers stay in :mod:`asgate.idm.models`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# TS 33.180 B.2.1: user attribute = claim name.
from asgate.kernel.claims import MC_ID_CLAIMS

# Client attribute: its authorization requests must carry a nonce (OIDC Core 3.1.2.1 makes it optional).
REQUIRE_NONCE = "require_nonce"
# Client attribute (OIDC Dynamic Client Registration 2): how its ID tokens are signed, RS256 or
# ES256. ``clients add`` sets RS256 (the registration default) for a client with a redirect URI;
# a client registered before there was a choice has none and keeps ES256 (docs/decisions.md).
ID_TOKEN_ALG = "id_token_signed_response_alg"  # noqa: S105 - a name, not a secret
ID_TOKEN_ALGS = ("RS256", "ES256")
LEGACY_ID_TOKEN_ALG = "ES256"  # noqa: S105 - an algorithm name
# Client attribute: when its logins get a refresh token. "offline_access" (OIDC Core 11: only when
# that scope was granted; what ``clients add`` sets for a client with a redirect URI) or "always"
# (every login, what a client registered before there was a choice keeps).
REFRESH_TOKENS = "refresh_tokens"
REFRESH_POLICIES = ("offline_access", "always")


class Client(BaseModel):
    """An OAuth2 client. ``secret_hash`` never leaves the process (see :meth:`public`)."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    name: str | None = None
    secret_hash: str | None = Field(default=None, repr=False)
    scopes: tuple[str, ...] = ()
    redirect_uris: tuple[str, ...] = ()
    as_svc_ids: tuple[str, ...] = ()
    # Issue 8 item 1: pools (TYPE/NAME, * for a whole part) this MC service client may serve.
    service_pools: tuple[str, ...] = ()
    attributes: dict[str, Any] = {}
    created_at: datetime
    updated_at: datetime

    @property
    def requires_nonce(self) -> bool:
        """Its authorization requests must carry a ``nonce`` (``clients add --require-nonce``)."""
        return self.attributes.get(REQUIRE_NONCE) is True

    @property
    def id_token_alg(self) -> str:
        """The algorithm of its ID tokens (``clients add|update --id-token-alg``)."""
        alg = self.attributes.get(ID_TOKEN_ALG)
        return alg if alg in ID_TOKEN_ALGS else LEGACY_ID_TOKEN_ALG

    def gets_refresh_token(self, scopes: Iterable[str]) -> bool:
        """Whether a login granted ``scopes`` yields a refresh token (``--refresh-tokens``)."""
        return self.attributes.get(REFRESH_TOKENS, "always") == "always" or "offline_access" in scopes

    def public(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", exclude={"secret_hash"})
        data["confidential"] = self.secret_hash is not None
        return data


class User(BaseModel):
    """An MC user (TS 33.180 B.2). ``password_hash`` never leaves the process (see :meth:`public`)."""

    model_config = ConfigDict(frozen=True)

    user_id: str  # the ``sub`` of the user's tokens: stable, never reassigned
    username: str
    password_hash: str = Field(repr=False)
    display_name: str | None = None
    email: str | None = None  # OIDC Core 5.1, for the email scope
    phone_number: str | None = None  # OIDC Core 5.1, for the phone scope
    mcptt_id: str | None = None
    mcvideo_id: str | None = None
    mcdata_id: str | None = None
    disabled: bool = False
    created_at: datetime
    updated_at: datetime

    def mc_claims(self) -> dict[str, str]:
        """The MC service IDs the user has, as the TS 33.180 B.2.1 claims."""
        return {name: value for name in MC_ID_CLAIMS if (value := getattr(self, name))}

    def standard_claims(self, scopes: Iterable[str]) -> dict[str, str]:
        """OIDC Core 5.4: ``name`` for ``profile``, ``email`` for ``email``, ``phone_number`` for
        ``phone``, each only when the user has it."""
        granted = set(scopes)
        wanted = (
            ("profile", "name", self.display_name),
            ("email", "email", self.email),
            ("phone", "phone_number", self.phone_number),
        )
        return {claim: value for scope, claim, value in wanted if scope in granted and value}

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"password_hash"})


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated RFC 6749 4.1.1 / OIDC Core 3.1.2.1 request, waiting for the user to log in."""

    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str
    nonce: str | None  # OIDC Core 3.1.2.1: optional for the code flow
    code_challenge: str  # RFC 7636 4.2, method S256
    response_mode: str = "query"  # or "form_post" (OAuth 2.0 Form Post Response Mode)


@dataclass(frozen=True)
class Family:
    """One login of one user at one client; its code and refresh tokens share its fate."""

    family_id: str
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    auth_time: datetime
    expires_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True)
class CodeGrant:
    """What an authorization code stands for (RFC 6749 4.1.3 checks it against the token request)."""

    family: Family
    redirect_uri: str
    nonce: str | None
    code_challenge: str


class GrantProblem(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    REUSED = "reused"  # the family has been revoked because of it
    REVOKED = "revoked"


@dataclass(frozen=True)
class GrantRejected:
    """A code or refresh token refused, as the unit of work that refused it returns it (a raise
    would roll back what the refusal wrote: for ``REUSED``, the revocation of ``family``, RFC 6749
    4.1.2 and 10.4). The caller answers ``invalid_grant`` once it has committed."""

    problem: GrantProblem
    family: Family | None = None
