"""Standard OpenID Connect claims (issue 9 item 1): a user's e-mail address and phone number, for
the ``email`` and ``phone`` scopes (OIDC Core 5.4).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("mc_users", sa.Column("email", sa.String(length=256), nullable=True))
    op.add_column("mc_users", sa.Column("phone_number", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("mc_users", "phone_number")
    op.drop_column("mc_users", "email")
