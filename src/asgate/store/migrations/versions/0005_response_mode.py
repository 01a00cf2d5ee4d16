"""OAuth 2.0 Form Post Response Mode (issue 9 item 1): a pending authorization request remembers
how its answer goes back to the client (``query`` or ``form_post``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "oauth_requests",
        sa.Column("response_mode", sa.String(length=16), server_default="query", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("oauth_requests", "response_mode")
