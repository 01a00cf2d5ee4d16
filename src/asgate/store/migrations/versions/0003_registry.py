"""Service registry server (seed 7.4.2.2.9): service instances, external application policies, MC
user grants, application profiles and their versions, notification outbox, CSC-15 change log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from asgate.store.schema import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_profile_versions",
        sa.Column("app_profile_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("app_profile_id", "version", name=op.f("pk_app_profile_versions")),
    )
    op.create_table(
        "app_profiles",
        sa.Column("app_profile_id", sa.String(length=36), nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("service_type", sa.String(length=32), nullable=False),
        sa.Column("service_name", sa.String(length=64), nullable=False),
        sa.Column("app_profile_index", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("requested", sa.Text(), nullable=True),
        sa.Column("profile", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("app_profile_id", name=op.f("pk_app_profiles")),
        sa.UniqueConstraint("app_id", "service_type", "service_name", name="uq_app_profiles_app_service"),
        sa.UniqueConstraint("app_profile_index", name=op.f("uq_app_profiles_app_profile_index")),
    )
    op.create_index(op.f("ix_app_profiles_app_id"), "app_profiles", ["app_id"], unique=False)
    op.create_table(
        "change_log",
        sa.Column(
            "seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_change_log")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "external_apps",
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("spec", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_external_apps")),
    )
    op.create_table(
        "notifications",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("app_profile_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sqlite_autoincrement=True,
    )
    op.create_index(op.f("ix_notifications_app_id"), "notifications", ["app_id"], unique=False)
    op.create_index("ix_notifications_due", "notifications", ["state", "next_attempt_at"], unique=False)
    op.create_index("ix_notifications_profile", "notifications", ["app_profile_id", "state"], unique=False)
    op.create_table(
        "sas_targets",
        sa.Column("url", sa.String(length=512), nullable=False),
        sa.Column("acked_seq", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_success_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("url", name=op.f("pk_sas_targets")),
    )
    op.create_table(
        "service_instances",
        sa.Column("service_instance_id", sa.String(length=36), nullable=False),
        sa.Column("client_id", sa.String(length=128), nullable=False),
        sa.Column("service_type", sa.String(length=32), nullable=False),
        sa.Column("service_name", sa.String(length=64), nullable=False),
        sa.Column("registration", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("heartbeat_period", sa.Integer(), nullable=False),
        sa.Column("registered_at", UtcDateTime(), nullable=False),
        sa.Column("last_heartbeat", sa.Float(), nullable=False),
        sa.Column("suspend_at", sa.Float(), nullable=False),
        sa.Column("remove_at", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("service_instance_id", name=op.f("pk_service_instances")),
    )
    op.create_index(op.f("ix_service_instances_client_id"), "service_instances", ["client_id"], unique=False)
    op.create_index(
        "ix_service_instances_pool", "service_instances", ["service_type", "service_name"], unique=False
    )
    op.create_index(op.f("ix_service_instances_remove_at"), "service_instances", ["remove_at"], unique=False)
    op.create_index(
        op.f("ix_service_instances_suspend_at"), "service_instances", ["suspend_at"], unique=False
    )
    op.create_table(
        "subscriptions",
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("notification_destination", sa.Text(), nullable=True),
        sa.Column("websocket", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_subscriptions")),
    )
    op.create_table(
        "user_grants",
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("mc_service_id", sa.String(length=256), nullable=False),
        sa.Column("services", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("app_id", "mc_service_id", name=op.f("pk_user_grants")),
    )
    op.create_index("ix_user_grants_mc_service_id", "user_grants", ["mc_service_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_user_grants_mc_service_id", table_name="user_grants")
    op.drop_table("user_grants")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_service_instances_suspend_at"), table_name="service_instances")
    op.drop_index(op.f("ix_service_instances_remove_at"), table_name="service_instances")
    op.drop_index("ix_service_instances_pool", table_name="service_instances")
    op.drop_index(op.f("ix_service_instances_client_id"), table_name="service_instances")
    op.drop_table("service_instances")
    op.drop_table("sas_targets")
    op.drop_index("ix_notifications_profile", table_name="notifications")
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_index(op.f("ix_notifications_app_id"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("external_apps")
    op.drop_table("change_log")
    op.drop_index(op.f("ix_app_profiles_app_id"), table_name="app_profiles")
    op.drop_table("app_profiles")
    op.drop_table("app_profile_versions")
