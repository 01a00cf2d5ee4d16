"""Foundation: clients, AS Service ID provisioning, AS registrations (TS 29.538), audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from asgate.store.schema import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=True),
        sa.Column("secret_hash", sa.String(256), nullable=True),
        sa.Column("scopes", Json, nullable=False),
        sa.Column("redirect_uris", Json, nullable=False),
        sa.Column("attributes", Json, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_clients"),
    )
    op.create_table(
        "client_as_svc_ids",
        sa.Column("as_svc_id", sa.String(256), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.client_id"],
            name="fk_client_as_svc_ids_client_id_clients",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("as_svc_id", name="pk_client_as_svc_ids"),
    )
    op.create_index("ix_client_as_svc_ids_client_id", "client_as_svc_ids", ["client_id"])
    op.create_table(
        "as_registrations",
        sa.Column("registration_id", sa.String(36), nullable=False),
        sa.Column("as_svc_id", sa.String(256), nullable=False),
        sa.Column("client_id", sa.String(128), nullable=False),
        sa.Column("app_id", sa.Text(), nullable=True),
        sa.Column("target_uri", sa.Text(), nullable=True),
        sa.Column("as_prof", sa.Text(), nullable=True),
        sa.Column("registered_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("registration_id", name="pk_as_registrations"),
        sa.UniqueConstraint("as_svc_id", name="uq_as_registrations_as_svc_id"),
    )
    op.create_index("ix_as_registrations_client_id", "as_registrations", ["client_id"])
    op.create_table(
        "audit_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(512), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", Json, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_resource", "audit_events", ["resource"])


def downgrade() -> None:
    op.drop_table("audit_events")
    op.drop_table("as_registrations")
    op.drop_table("client_as_svc_ids")
    op.drop_table("clients")
