"""Tables of the service registry server (seed 7.4.2.2.9): service instances, external application
policies, MC user grants, application profiles, notification outbox, and the CSC-15 change log.

Liveness deadlines and outbox schedules are epoch seconds (floats): the sweeper and the delivery
workers compare and compute them in plain SQL on every backend.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from asgate.store.schema import BigId, UtcDateTime, metadata

service_instances = Table(
    "service_instances",
    metadata,
    Column("service_instance_id", String(36), primary_key=True),
    Column("client_id", String(128), nullable=False, index=True),
    Column("service_type", String(32), nullable=False),
    Column("service_name", String(64), nullable=False),
    Column("registration", Text, nullable=False),  # JSON of the ServiceRegistration
    Column("status", String(16), nullable=False),
    Column("heartbeat_period", Integer, nullable=False),
    Column("registered_at", UtcDateTime(), nullable=False),
    Column("last_heartbeat", Float, nullable=False),
    Column("suspend_at", Float, nullable=False, index=True),
    Column("remove_at", Float, nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Index("ix_service_instances_pool", "service_type", "service_name"),
)

external_apps = Table(
    "external_apps",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("spec", Text, nullable=False),  # JSON of the ExternalAppSpec
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

user_grants = Table(
    "user_grants",
    metadata,
    Column("app_id", String(128), primary_key=True),
    Column("mc_service_id", String(256), primary_key=True),
    Column("services", Text, nullable=True),  # JSON list of AllowedService; NULL: all the app may use
    Column("version", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_user_grants_mc_service_id", "mc_service_id"),
)

app_profiles = Table(
    "app_profiles",
    metadata,
    Column("app_profile_id", String(36), primary_key=True),
    Column("app_id", String(128), nullable=False, index=True),
    Column("service_type", String(32), nullable=False),
    Column("service_name", String(64), nullable=False),
    Column("app_profile_index", Integer, nullable=False, unique=True),
    Column("version", Integer, nullable=False),
    Column("requested", Text, nullable=True),  # JSON of the ServiceCapabilities asked for
    Column("profile", Text, nullable=False),  # JSON of the current ApplicationProfile
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("app_id", "service_type", "service_name", name="uq_app_profiles_app_service"),
)

app_profile_versions = Table(
    "app_profile_versions",
    metadata,
    Column("app_profile_id", String(36), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("profile", Text, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("app_id", String(128), primary_key=True),
    Column("notification_destination", Text, nullable=True),
    Column("websocket", Boolean, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("app_id", String(128), nullable=False, index=True),
    Column("app_profile_id", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("destination", Text, nullable=False),  # a URI, or "websocket"
    Column("state", String(16), nullable=False),  # PENDING, DELIVERED, SUPERSEDED
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("delivered_at", UtcDateTime(), nullable=True),
    Index("ix_notifications_due", "state", "next_attempt_at"),
    Index("ix_notifications_profile", "app_profile_id", "state"),
    sqlite_autoincrement=True,
)

# CSC-15: every change a service access server must know, in order; `seq` is the sequence number.
change_log = Table(
    "change_log",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("op", String(8), nullable=False),  # PUT, DELETE
    Column("payload", Text, nullable=True),
    sqlite_autoincrement=True,
)

# Delivery state of the change log towards each configured service access server.
sas_targets = Table(
    "sas_targets",
    metadata,
    Column("url", String(512), primary_key=True),
    Column("acked_seq", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Float, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("last_success_at", UtcDateTime(), nullable=True),
    # Issue 10: one registry process pushes to a target at a time, the one holding its lease.
    Column("holder", String(64), nullable=True),
    Column("lease_until", Float, nullable=True),
)

# Issue 10: the service access servers that registered themselves (and heartbeat); the pusher
# pushes to every one seen within ``registry_sas_timeout``. Their cursors stay in ``sas_targets``.
access_servers = Table(
    "access_servers",
    metadata,
    Column("sas_id", String(64), primary_key=True),
    Column("owner", String(128), nullable=False),  # the client ID that registered it
    Column("url", String(512), nullable=False),
    Column("registered_at", UtcDateTime(), nullable=False),
    Column("last_seen_at", UtcDateTime(), nullable=False),
)

# Issue 8 item 1: the service interface description the administrator approved for each pool.
# Applications see a pool's resources and operations only as far as they are approved here; a
# widening waits for approval (``rejected`` is the digest of an offer the administrator refused).
pool_interfaces = Table(
    "pool_interfaces",
    metadata,
    Column("service_type", String(32), primary_key=True),
    Column("service_name", String(64), primary_key=True),
    Column("approved", Text, nullable=True),  # JSON list of Version; NULL: nothing approved yet
    Column("rejected", String(64), nullable=True),
    Column("version", Integer, nullable=False),
    Column("updated_by", String(256), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)
