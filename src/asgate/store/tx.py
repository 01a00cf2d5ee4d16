"""The store's unit of work: one transaction, seen through one typed object per aggregate.

A role package writes with ``await store.write(lambda tx: scripts.register(tx, ...))``: the function
runs inside the next group-commit transaction, in a savepoint of its own (see
:meth:`asgate.store.Store.write`), and reaches the data only through ``tx``'s aggregates, never
through SQL or a ``Connection``. Decisions (provisioning, ownership, lifecycle) stay in the role
packages and can be table-tested with a fake ``tx`` that has the same attributes.
"""

from __future__ import annotations

from sqlalchemy import Connection

from asgate.store.audit import AuditTx
from asgate.store.clients import ClientsTx
from asgate.store.grants_oidc import GrantsOidcTx
from asgate.store.msgs import RegistrationsTx
from asgate.store.pools import PoolsTx
from asgate.store.registry import (
    AccessServers,
    Apps,
    Changes,
    Grants,
    Instances,
    Outbox,
    Profiles,
    Subscriptions,
    Targets,
)
from asgate.store.signing_keys import SigningKeysTx
from asgate.store.users import UsersTx


class Tx:
    """One transaction. Each aggregate of the store is an attribute, e.g. ``tx.instances``."""

    __slots__ = (
        "_conn",
        "audit",
        # the registry (store/registry/, store/pools.py):
        "access_servers",
        "apps",
        "changes",
        "grants",
        "instances",
        "outbox",
        "pools",
        "profiles",
        "subscriptions",
        "targets",
        # msgin5g:
        "registrations",
        # the IdM:
        "clients",
        "grants_oidc",
        "users",
        "signing_keys",
    )

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.audit = AuditTx(conn)
        # the registry (store/registry/, store/pools.py):
        self.instances = Instances(conn)
        self.apps = Apps(conn)
        self.grants = Grants(conn)
        self.profiles = Profiles(conn)
        self.subscriptions = Subscriptions(conn)
        self.outbox = Outbox(conn)
        self.changes = Changes(conn)
        self.targets = Targets(conn)
        self.access_servers = AccessServers(conn)
        self.pools = PoolsTx(conn)
        # msgin5g:
        self.registrations = RegistrationsTx(conn)
        # the IdM:
        self.clients = ClientsTx(conn)
        self.grants_oidc = GrantsOidcTx(conn)
        self.users = UsersTx(conn, self.grants_oidc)
        self.signing_keys = SigningKeysTx(conn)

    def flush(self) -> None:
        """Write what the aggregates buffered (the store calls it when a unit of work ends)."""
        self.audit.flush()
