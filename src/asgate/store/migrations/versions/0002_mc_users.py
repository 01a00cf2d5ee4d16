"""MC users and their OpenID Connect grants (TS 33.180 Annex B): authorization requests, codes,
token families, refresh tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from asgate.store.schema import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "mc_users",
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("username", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("mcptt_id", sa.String(256), nullable=True),
        sa.Column("mcvideo_id", sa.String(256), nullable=True),
        sa.Column("mcdata_id", sa.String(256), nullable=True),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_mc_users"),
        sa.UniqueConstraint("username", name="uq_mc_users_username"),
        sa.UniqueConstraint("mcptt_id", name="uq_mc_users_mcptt_id"),
        sa.UniqueConstraint("mcvideo_id", name="uq_mc_users_mcvideo_id"),
        sa.UniqueConstraint("mcdata_id", name="uq_mc_users_mcdata_id"),
    )
    op.create_table(
        "oauth_requests",
        sa.Column("handle_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scopes", Json, nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.client_id"],
            name="fk_oauth_requests_client_id_clients",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("handle_hash", name="pk_oauth_requests"),
    )
    op.create_index("ix_oauth_requests_expires_at", "oauth_requests", ["expires_at"])
    op.create_table(
        "oauth_families",
        sa.Column("family_id", sa.String(36), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("scopes", Json, nullable=False),
        sa.Column("auth_time", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.client_id"],
            name="fk_oauth_families_client_id_clients",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["mc_users.user_id"], name="fk_oauth_families_user_id_mc_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("family_id", name="pk_oauth_families"),
    )
    op.create_index("ix_oauth_families_client_id", "oauth_families", ["client_id"])
    op.create_index("ix_oauth_families_user_id", "oauth_families", ["user_id"])
    op.create_index("ix_oauth_families_expires_at", "oauth_families", ["expires_at"])
    op.create_table(
        "oauth_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(36), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("nonce", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["oauth_families.family_id"],
            name="fk_oauth_codes_family_id_oauth_families",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name="pk_oauth_codes"),
    )
    op.create_index("ix_oauth_codes_family_id", "oauth_codes", ["family_id"])
    op.create_index("ix_oauth_codes_expires_at", "oauth_codes", ["expires_at"])
    op.create_table(
        "oauth_refresh_tokens",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("family_id", sa.String(36), nullable=False),
        sa.Column("issued_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("rotated_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["family_id"],
            ["oauth_families.family_id"],
            name="fk_oauth_refresh_tokens_family_id_oauth_families",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name="pk_oauth_refresh_tokens"),
    )
    op.create_index("ix_oauth_refresh_tokens_family_id", "oauth_refresh_tokens", ["family_id"])


def downgrade() -> None:
    op.drop_table("oauth_refresh_tokens")
    op.drop_table("oauth_codes")
    op.drop_table("oauth_families")
    op.drop_table("oauth_requests")
    op.drop_table("mc_users")
