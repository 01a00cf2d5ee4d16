"""Tables. Migrations in ``migrations/versions`` create exactly these (a test compares them)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JsonType = JSON().with_variant(JSONB(), "postgresql")
# SQLite has no 64-bit autoincrement distinct from INTEGER PRIMARY KEY (which is already 64 bit).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


clients = Table(
    "clients",
    metadata,
    Column("client_id", String(128), primary_key=True),
    Column("name", String(256), nullable=True),
    Column("secret_hash", String(256), nullable=True),
    Column("scopes", JsonType, nullable=False),
    Column("redirect_uris", JsonType, nullable=False),
    Column("attributes", JsonType, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# TS 23.554 8.2.5 pre-condition 2: an AS Service ID is provisioned for exactly one client.
client_as_svc_ids = Table(
    "client_as_svc_ids",
    metadata,
    Column("as_svc_id", String(256), primary_key=True),
    Column(
        "client_id",
        String(128),
        ForeignKey("clients.client_id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
)

# Issue 8 item 1: the pools a service client may serve (``TYPE/NAME``, either part may be ``*``),
# provisioned like AS Service IDs; nothing by default.
client_service_pools = Table(
    "client_service_pools",
    metadata,
    Column(
        "client_id",
        String(128),
        ForeignKey("clients.client_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("pattern", String(100), primary_key=True),
)

as_registrations = Table(
    "as_registrations",
    metadata,
    # Time-ordered ids: keyset pagination by id lists registrations in creation order.
    Column("registration_id", String(36), primary_key=True),
    Column("as_svc_id", String(256), nullable=False, unique=True),
    Column("client_id", String(128), nullable=False, index=True),
    Column("app_id", Text, nullable=True),
    Column("target_uri", Text, nullable=True),
    Column("as_prof", Text, nullable=True),  # JSON text of the AS profile
    Column("registered_at", UtcDateTime(), nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("resource", String(512), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("details", JsonType, nullable=True),
    Index("ix_audit_events_resource", "resource"),
)
