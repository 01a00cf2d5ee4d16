"""Access-token revocation (issue 9 item 1, RFC 7009): the ``jti`` of every revoked access token
until it expires, and an index on ``oauth_families.revoked_at`` for the servers' polls.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from asgate.store.schema import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "oauth_revoked_tokens",
        sa.Column("jti", sa.String(128), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("jti", name="pk_oauth_revoked_tokens"),
    )
    op.create_index("ix_oauth_revoked_tokens_revoked_at", "oauth_revoked_tokens", ["revoked_at"])
    op.create_index("ix_oauth_revoked_tokens_expires_at", "oauth_revoked_tokens", ["expires_at"])
    op.create_index("ix_oauth_families_revoked_at", "oauth_families", ["revoked_at"])


def downgrade() -> None:
    op.drop_index("ix_oauth_families_revoked_at", table_name="oauth_families")
    op.drop_table("oauth_revoked_tokens")
