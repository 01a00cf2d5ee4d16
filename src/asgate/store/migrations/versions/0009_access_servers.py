"""Access servers register themselves with the registry and heartbeat (issue 10 §2); one registry
process at a time pushes CSC-15 to each, the one holding the target's lease.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from asgate.store.schema import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_servers",
        sa.Column("sas_id", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("url", sa.String(512), nullable=False),
        sa.Column("registered_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sas_id", name=op.f("pk_access_servers")),
    )
    op.add_column("sas_targets", sa.Column("holder", sa.String(64), nullable=True))
    op.add_column("sas_targets", sa.Column("lease_until", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sas_targets") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("holder")
    op.drop_table("access_servers")
