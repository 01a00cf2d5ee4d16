"""Pool ownership (issue 8 item 1): the pools each service client may serve, and the service
interface description approved for each pool.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from asgate.store.schema import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "client_service_pools",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("pattern", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.client_id"],
            name=op.f("fk_client_service_pools_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "pattern", name=op.f("pk_client_service_pools")),
    )
    op.create_table(
        "pool_interfaces",
        sa.Column("service_type", sa.String(length=32), nullable=False),
        sa.Column("service_name", sa.String(length=64), nullable=False),
        sa.Column("approved", sa.Text(), nullable=True),
        sa.Column("rejected", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("service_type", "service_name", name=op.f("pk_pool_interfaces")),
    )


def downgrade() -> None:
    op.drop_table("pool_interfaces")
    op.drop_table("client_service_pools")
