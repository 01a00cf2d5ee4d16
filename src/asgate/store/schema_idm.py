"""Tables of the identity management server: MC users and their OpenID Connect grants.

Secrets (authorization-request handles, codes, refresh tokens) are stored as SHA-256 digests of
256-bit random values: a stolen database yields nothing that can be presented.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, String, Table, Text

from asgate.store.schema import JsonType, UtcDateTime, metadata

# TS 33.180 B.2: an MC user; ``user_id`` is the ID token's ``sub`` (stable, never reassigned).
mc_users = Table(
    "mc_users",
    metadata,
    Column("user_id", String(36), primary_key=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("password_hash", String(256), nullable=False),
    Column("display_name", String(256), nullable=True),
    # OIDC Core 5.1 ``email`` and ``phone_number``, released for the email and phone scopes.
    Column("email", String(256), nullable=True),
    Column("phone_number", String(64), nullable=True),
    # TS 33.180 B.2.1: the MC service IDs, each identifying one user.
    Column("mcptt_id", String(256), nullable=True, unique=True),
    Column("mcvideo_id", String(256), nullable=True, unique=True),
    Column("mcdata_id", String(256), nullable=True, unique=True),
    Column("disabled", Boolean(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# RFC 6749 4.1.1: a validated authorization request waiting for the user to log in. The login
# form carries its handle (single use), so a forged POST cannot start a flow of its own.
oauth_requests = Table(
    "oauth_requests",
    metadata,
    Column("handle_hash", String(64), primary_key=True),
    Column("client_id", String(128), ForeignKey("clients.client_id", ondelete="CASCADE"), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("scopes", JsonType, nullable=False),
    Column("state", Text, nullable=False),
    Column("nonce", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    # How the answer goes back: "query" (redirect) or "form_post" (OAuth 2.0 Form Post Response Mode).
    Column("response_mode", String(16), nullable=False, server_default="query"),
)

# One login of one user at one client: the codes and refresh tokens it yields share its fate
# (RFC 6749 4.1.2 and 10.4: reuse of a code or a rotated refresh token revokes the whole family).
oauth_families = Table(
    "oauth_families",
    metadata,
    Column("family_id", String(36), primary_key=True),
    Column(
        "client_id",
        String(128),
        ForeignKey("clients.client_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column(
        "user_id", String(36), ForeignKey("mc_users.user_id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("scopes", JsonType, nullable=False),
    Column("auth_time", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

# RFC 6749 4.1.2: short-lived and single use; kept after use (``used_at``) to detect a replay.
oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column(
        "family_id",
        String(36),
        ForeignKey("oauth_families.family_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("redirect_uri", Text, nullable=False),
    Column("nonce", Text, nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
    Column("used_at", UtcDateTime(), nullable=True),
)

# RFC 6749 6 / RFC 9700 4.14.2: rotated on every use; a rotated token is kept to detect its reuse.
oauth_refresh_tokens = Table(
    "oauth_refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "family_id",
        String(36),
        ForeignKey("oauth_families.family_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("issued_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("rotated_at", UtcDateTime(), nullable=True),
)

# RFC 7009 for access tokens: what every server that checks bearer tokens must refuse until
# ``expires_at``: one access token (kind "jti") or every access token of a login (kind "sid", its
# family). Servers poll for rows revoked lately (asgate.auth.revocation); a split access server
# copies the control plane's rows into its own database for its data-plane workers.
oauth_revocations = Table(
    "oauth_revocations",
    metadata,
    Column("kind", String(8), primary_key=True),
    Column("ident", String(128), primary_key=True),
    Column("revoked_at", UtcDateTime(), nullable=False, index=True),
    Column("expires_at", UtcDateTime(), nullable=False, index=True),
)
