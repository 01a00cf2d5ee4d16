"""Access-token revocation (issue 9 item 1, RFC 7009): what every server that checks bearer tokens
must refuse, one access token (``jti``) or a whole login (``sid``), until the tokens expire.

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
        "oauth_revocations",
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("ident", sa.String(128), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "ident", name="pk_oauth_revocations"),
    )
    op.create_index("ix_oauth_revocations_revoked_at", "oauth_revocations", ["revoked_at"])
    op.create_index("ix_oauth_revocations_expires_at", "oauth_revocations", ["expires_at"])


def downgrade() -> None:
    op.drop_table("oauth_revocations")
